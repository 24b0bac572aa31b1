"""Immutable dataset versions ``<out>/<name>/v<N>/``: numbering and the one streaming pass that writes them.

A version holds ``mvtec/<category>/`` (strictly MVTec AD: real images only), ``synthetic/<category>/``
(learn shots and synthetic anomalies in the layout anomalib's ``Folder`` reads; ``writers.mvtec``),
``coco/instances_<split>.json`` (RLE),
``hf/`` (embedded parquet shards + dataset card), ``stats.json``, ``contact_sheet.png`` (plus
``dropped_sheet.png``, the records the filter dropped captioned with their first reason, when
``show_dropped`` and scores are given),
``records.jsonl`` (kept synthetic records, paths relative to the version) and ``manifest.json``.
It is written into a temporary sibling folder and renamed into place only when complete, so an
interrupted run (exception, Ctrl-C) leaves no ``v<N>`` and never touches existing versions.

Each image is read, its mask built, split into connected instances and turned into PNG bytes once
(``writers.render``), in a small thread pool with a bounded window; every writer
consumes the same result, so memory does not grow with the number of images. Methods: AnoGen (Gui et
al., ECCV 2024) weak box labels and DualAnoDiff (Jin et al., CVPR 2025) pixel masks are both supported.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from anogen_data import __version__
from anogen_data.config import ExportConfig, config_to_dict
from anogen_data.data.image_io import read_image, write_png
from anogen_data.errors import AnogenError
from anogen_data.files import atomic_output_dir, write_json
from anogen_data.records import IndexEntry, SynthRecord, to_row
from anogen_data.writers.card import render_card
from anogen_data.writers.coco import CocoWriter
from anogen_data.writers.contact_sheet import ContactSheet
from anogen_data.writers.hf import HfWriter, defect_names
from anogen_data.writers.manifest import MANIFEST, build_manifest, concept_hashes, git_commit, index_sha256, seeds_of
from anogen_data.writers.mvtec import write_file
from anogen_data.writers.plan import ExportItem, plan_items
from anogen_data.writers.render import Rendered, item_mask, render_item
from anogen_data.writers.stats import StatsAccumulator

_VERSION_DIR = re.compile(r"^v(\d+)$")
DROPPED_SHEET = "dropped_sheet.png"


def existing_versions(name_dir: Path) -> list[int]:
    """Sorted version numbers N of the ``v<N>`` folders in ``name_dir``.

    Raises:
        AnogenError: the folder cannot be read (e.g. a name longer than the file system allows).
    """
    try:
        if not Path(name_dir).is_dir():
            return []
        return sorted(int(m.group(1)) for p in Path(name_dir).iterdir() if (m := _VERSION_DIR.match(p.name)))
    except OSError as exc:
        raise AnogenError(f"cannot read {name_dir}: {exc.strerror}; choose another --out") from exc


def next_version(name_dir: Path) -> int:
    """One more than the highest existing version (1 for a new name)."""
    return max(existing_versions(name_dir), default=0) + 1


def ordered_map(fn: Callable, items: Iterable, workers: int, window: int) -> Iterator:
    """``map(fn, items)`` in order on ``workers`` threads with at most ``window`` results in flight."""
    if workers <= 1:
        yield from map(fn, items)
        return
    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


class _Writers:
    """Every per-image writer of one version folder, fed the same ``Rendered`` results."""

    def __init__(self, folder: Path, name: str, category: str, version: int, cfg: ExportConfig,
                 defect_types: list[str]):
        info = {"description": f"anogen-data {name} v{version} ({category})", "version": f"v{version}",
                "contributor": f"anogen-data {__version__}", "url": "",
                "file_name_root": "the version folder (parent of coco/)"}
        self.folder = folder
        self.name, self.category, self.version = name, category, version
        self.coco = CocoWriter(folder / "coco", info, cfg.license)
        self.hf = HfWriter(folder / "hf" / "data", max_shard_bytes=cfg.max_shard_mb << 20, batch_rows=cfg.batch_rows,
                           defect_types=defect_types)
        self.defect_types = defect_types
        self.stats = StatsAccumulator()
        self.records = open(folder / "records.jsonl", "w", encoding="utf-8")
        self.backends: set[str] = set()
        self.count = 0

    def add(self, done: Rendered, sheet: ContactSheet) -> None:
        item = done.item
        write_file(self.folder, item.image_rel, done.image_png)
        if done.mask_png is not None:
            write_file(self.folder, item.mask_rel, done.mask_png)
        self.coco.add(item.split, item.image_rel, done.width, done.height, item.source, item.defect_type,
                      done.instances, item.mask_quality)
        self.hf.add(item.split, {
            "image": {"bytes": done.image_png, "path": Path(item.image_rel).name},
            "mask": {"bytes": done.mask_png, "path": Path(item.mask_rel).name} if done.mask_png else None,
            "label": 0 if item.label == "good" else 1, "defect_type": item.defect_type, "category": self.category,
            "bboxes": [list(i.bbox_xywh) for i in done.instances], "source": item.source, "backend": item.backend,
            "seed": item.seed, "mask_quality": item.mask_quality, "file_name": item.image_rel,
        }, len(done.image_png) + len(done.mask_png or b""))
        self.stats.add(item.split, item.defect_type, item.source, done.width, done.height, done.instances,
                       item.mask_quality)
        if item.record is not None:
            self.records.write(_json_line(to_row(item.record)))
            self.backends.add(item.backend)
        if done.thumbnail is not None:
            sheet.add(self.count, done.thumbnail, _caption(item))
        self.count += 1

    def close(self) -> dict[str, dict]:
        self.records.close()
        self.coco.close()
        return self.hf.close()

    def abort(self) -> None:
        self.records.close()
        self.coco.abort()
        self.hf.abort()


def dropped_sheet(dropped: list[ExportItem], cfg: ExportConfig):
    """The first ``contact_sheet_cells`` dropped records, captioned with their first reason on two lines
    (the filter's name, then its value and limit: "change_iou" / "0.14 < 0.2").

    Returns uint8 (rows * (thumb + caption), columns * thumb, 3) RGB (``ContactSheet.render``; one black
    "empty" cell when nothing was dropped). Mask outlines in red as on the contact sheet (255 = defect).
    """
    sheet = ContactSheet(per_group=cfg.contact_sheet_cells, max_cells=cfg.contact_sheet_cells, caption_lines=2)
    for n, item in enumerate(dropped[:cfg.contact_sheet_cells]):
        image = read_image(item.image_src)
        sheet.add(n, sheet.thumbnail(image, item_mask(item, *image.shape[:2])),
                  item.dropped_reason.replace(": ", "\n", 1))
    return sheet.render()


def _caption(item: ExportItem) -> str:
    """Contact-sheet caption: "train good", "test crack", "shot crack" (learn shot), "syn crack"."""
    if item.source == "synthetic":
        kind = "syn"
    elif item.split == "train" and item.label == "anomaly":
        kind = "shot"
    else:
        kind = item.split
    return f"{kind} {item.defect_type}"


def _json_line(row: dict) -> str:
    return json.dumps(row, sort_keys=True) + "\n"


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("export"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True)


def _write_images(writers: _Writers, items: Iterator[ExportItem], cfg: ExportConfig, sheet: ContactSheet,
                  total: int | None) -> list[ExportItem]:
    """Render and write every item in order; returns the dropped items (``dropped_reason`` set), in order,
    which are passed through unrendered and never written."""
    def planned() -> Iterator[tuple[ExportItem, bool]]:
        for item in items:  # contact-sheet picks are made here, in order, from metadata only
            yield item, item.dropped_reason is None and sheet.wants(item.split, item.source, item.defect_type)

    def render(job: tuple[ExportItem, bool]) -> Rendered | ExportItem:
        return job[0] if job[0].dropped_reason is not None else render_item(job[0], cfg, sheet if job[1] else None)

    dropped: list[ExportItem] = []
    with _progress() as bar:
        task = bar.add_task("export", total=total)
        for done in ordered_map(render, planned(), cfg.workers, window=2 * max(1, cfg.workers)):
            if isinstance(done, ExportItem):
                dropped.append(done)
            else:
                writers.add(done, sheet)
            bar.advance(task)
    return dropped


def write_version(
    out_root: Path,
    name: str,
    *,
    category: str,
    index: list[IndexEntry],
    records: Iterable[SynthRecord] = (),
    records_dir: Path | None = None,
    scores: dict[str, dict] | None = None,
    version: int | None = None,
    lineage: dict | None = None,
    configs: dict | None = None,
    config: ExportConfig | None = None,
) -> Path:
    """Write the dataset version ``out_root/name/v<N>`` and return its folder.

    Args:
        out_root: folder holding one folder per dataset name (e.g. ``datasets``).
        name: dataset name (a plain folder name).
        category: the category every index row and record belongs to.
        index: index rows; roles decide the split (see ``writers.plan``).
        records: synthetic records (a list, or any iterable: read once into a list of metadata, so the
            ``defect_type`` ClassLabel knows every name before the first row); paths relative to ``records_dir``.
        records_dir: the folder record paths are relative to (the records file's folder).
        scores: filter rows keyed by record id ``{"keep", "reasons", "scores"}``; only kept records are written
            (with ``config.show_dropped`` the dropped ones are drawn on ``dropped_sheet.png``).
        version: N; the next free number when None.
        lineage: extra lineage facts (e.g. ``{"index_file": ..., "concepts_dir": ...}``); merged into the manifest.
        configs: resolved stage configs ``{stage: dict}``, recorded in the manifest.
        config: the export options (defaults when None).

    Raises:
        AnogenError: the version exists (versions are immutable), a bad name, an unwritable output, or
            bad inputs (see ``plan_items`` and ``item_mask``).
    """
    cfg = config or ExportConfig()
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name) or ".." in name:
        raise AnogenError(f"dataset name '{name}' is not a plain folder name; use letters, digits, '_', '-', '.'")
    name_dir = Path(out_root) / name
    number = version if version is not None else next_version(name_dir)
    if number < 1:
        raise AnogenError(f"--version must be 1 or more, got {number}")
    final = name_dir / f"v{number}"
    if final.exists():
        raise AnogenError(
            f"{final} already exists and dataset versions are never overwritten; omit --version to write "
            f"v{next_version(name_dir)}"
        )
    full_lineage = _lineage(index, lineage, configs, cfg)
    records = records if isinstance(records, list) else list(records)  # metadata only: no pixels are held
    defect_types = defect_names([e.defect_type for e in index] + [r.defect_type for r in records])
    total = len(index) + len(records)
    show_dropped = cfg.show_dropped and scores is not None
    with atomic_output_dir(final, marker=False) as tmp:  # versions are never replaced: no --force marker
        _write_all(tmp, _Writers(tmp, name, category, number, cfg, defect_types), plan_items(
            category, index, records, records_dir, scores, cfg.include_learn, show_dropped), cfg, scores, full_lineage,
            total, show_dropped)
    return final


def _lineage(index: list[IndexEntry], lineage: dict | None, configs: dict | None, cfg: ExportConfig) -> dict:
    extra = dict(lineage or {})
    concepts = extra.pop("concepts_dir", None)
    configs = {**(configs or {}), "export": config_to_dict(cfg)}
    return {
        "index_sha256": index_sha256(index),
        "concepts": concept_hashes(Path(concepts)) if concepts else {},
        "configs": configs,
        "seeds": seeds_of(configs),
        "package_version": __version__,
        "git_commit": git_commit(),
        **extra,
    }


def _write_all(tmp: Path, writers: _Writers, items: Iterator[ExportItem],
               cfg: ExportConfig, scores: dict | None, lineage: dict, total: int | None,
               show_dropped: bool = False) -> None:
    name, category, number = writers.name, writers.category, writers.version
    sheet = ContactSheet(per_group=cfg.contact_sheet_per_group, max_cells=cfg.contact_sheet_cells)
    try:
        dropped = _write_images(writers, items, cfg, sheet, total)
        hf_splits = writers.close()
    except BaseException:
        writers.abort()
        raise
    if writers.count == 0:
        raise AnogenError("nothing to export: the index has no rows and no record was kept; check --index/--scores")
    stats = writers.stats.result(scores)
    write_json(tmp / "stats.json", stats)
    sheet_png = sheet.render()
    write_png(tmp / "contact_sheet.png", sheet_png)
    write_png(tmp / "hf" / "contact_sheet.png", sheet_png)
    if show_dropped:
        write_png(tmp / DROPPED_SHEET, dropped_sheet(dropped, cfg))
    splits = {s: hf_splits[s] for s in ("train", "test") if s in hf_splits}
    card = render_card(name=name, category=category, version=number, stats=stats, lineage=lineage, splits=splits,
                       license_name=cfg.license, backends=sorted(writers.backends),
                       include_learn=cfg.include_learn, defect_types=writers.defect_types)
    (tmp / "hf" / "README.md").write_text(card, encoding="utf-8")
    write_json(tmp / MANIFEST, build_manifest(tmp, name=name, category=category, version=number, lineage=lineage))
