"""Stage ``quality``: dataset-level quality metrics of one version, written to ``quality.json`` (a DVC metric).

``quality.json`` holds numbers only; the backbone name, version path and config go to
``quality.info.json`` beside it (not a metric, so ``dvc exp show`` gets no string columns).

Reads the version's ``records.jsonl`` (generated anomalies; paths relative to the version folder) and
the index's held-out real anomalies (role "eval"). Metrics: ``anogen_data.quality`` (KID on
EfficientNet-Lite0 features, Binkowski et al., ICLR 2018; diversity; mask agreement), for datasets made
with AnoGen (Gui et al., ECCV 2024), DualAnoDiff (Jin et al., CVPR 2025) or the CPU backends.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from anogen_data.config import QualityConfig, config_to_dict
from anogen_data.errors import AnogenError
from anogen_data.files import check_writable, follow_umask, split_metrics, write_json
from anogen_data.filters.embed import Embedder
from anogen_data.quality.report import Item, measure, quality_report
from anogen_data.records import IndexEntry, read_records
from anogen_data.stages.index import load_index_entries
from anogen_data.synthesis import WHOLE_IMAGE_BACKENDS


AGREEMENT_SKIP_REASON = (
    "backend renders the whole image anew (DualAnoDiff draws the whole object), so every pixel differs from "
    "the source and a change map against it (or against the source with its object removed) does not say where "
    "the defect is; mask_change_iou / mask_leakage cover the other records only"
)


def generated_items(version_dir: Path, entries: list[IndexEntry] | None = None) -> list[Item]:
    """The version's synthetic anomalies (``records.jsonl``), with their sources for mask agreement
    (no source for records of whole-image backends: their agreement is skipped, see ``agreement_skipped``).

    With ``entries`` every record's source must be a train/learn image of that index (the same category).
    """
    records_file = Path(version_dir) / "records.jsonl"
    if not records_file.is_file():
        raise AnogenError(f"{records_file} does not exist; pass a version folder written by `anogen-data export`")
    records = read_records(records_file, index=entries)
    if not records:
        raise AnogenError(f"{records_file} holds no synthetic records; export a version with --records")
    for record in records:
        if not Path(record.source_path).is_file():
            raise AnogenError(f"{records_file}: record {record.id} names source {record.source_path}, which does "
                              "not exist; mount the real data at the path the index used")
    return [Item(r.defect_type, Path(version_dir) / r.image_path, Path(version_dir) / r.mask_path,
                 tuple(r.bbox_xyxy), None if r.backend in WHOLE_IMAGE_BACKENDS else Path(r.source_path),
                 r.backend) for r in records]


def agreement_skipped(items: list[Item]) -> dict | None:
    """quality.json's note on records left out of the mask-agreement statistics (None when none were)."""
    skipped = [item for item in items if item.backend in WHOLE_IMAGE_BACKENDS]
    if not skipped:
        return None
    return {"n": len(skipped), "backends": sorted({item.backend for item in skipped}), "reason": AGREEMENT_SKIP_REASON}


def real_eval_items(entries: list[IndexEntry], index_file: Path) -> list[Item]:
    """The held-out real anomalies (role "eval", with masks) of the index."""
    items = [Item(e.defect_type, Path(e.path), Path(e.mask_path)) for e in entries
             if e.role == "eval" and e.label == "anomaly" and e.mask_path]
    if not items:
        raise AnogenError(f"{index_file} has no eval anomalies to compare with; re-run `anogen-data index`")
    return items


def run_quality(config: QualityConfig, version_dir: Path, index_file: Path, out_file: Path, *,
                progress: bool = True) -> dict:
    """Measure a version against the index's eval anomalies; write ``out_file`` (numbers) and its info file.

    Returns the whole report (numbers and info together).
    """
    from rich.progress import Progress

    check_writable(Path(out_file))  # before the backbone passes, not after
    entries = load_index_entries(Path(index_file))
    generated = generated_items(Path(version_dir), entries)
    real = real_eval_items(entries, Path(index_file))
    embedder = Embedder(config.batch_size)
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("quality", total=len(generated) + len(real))
        advance = lambda n: bar.advance(task, n)  # noqa: E731
        real_sets = measure(real, embedder, config, advance)
        generated_sets = measure(generated, embedder, config, advance)
    report = {**quality_report(real_sets, generated_sets, config), "version": str(version_dir),
              "config": config_to_dict(config)}
    skipped = agreement_skipped(generated)
    if skipped:
        report["mask_agreement_skipped"] = skipped
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_file.name}.", dir=out_file.parent)
    os.close(fd)
    follow_umask(Path(tmp))  # mkstemp makes 0600; quality.json is shared like every other output
    numbers, info = split_metrics(report)
    try:
        write_json(Path(tmp), info)
        os.replace(tmp, info_file(out_file))
        write_json(Path(tmp), numbers)
        os.replace(tmp, out_file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return report


def info_file(out_file: Path) -> Path:
    """Where the non-numeric part of ``quality.json`` goes: ``quality.info.json`` beside it."""
    return Path(out_file).with_name(Path(out_file).stem + ".info.json")
