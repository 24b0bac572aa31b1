"""Stage ``export``: read the index, synthetic records and filter scores, and write one dataset version.

The version (``<out>/<name>/v<N>``; MVTec tree, COCO RLE, HF parquet, stats, contact sheet, card,
manifest) is written by ``anogen_data.writers.version.write_version``; this module only reads the
stage's input files and gathers their lineage (file hashes and the ``config.json`` beside each input).
Methods: AnoGen (Gui et al., ECCV 2024) and DualAnoDiff (Jin et al., CVPR 2025) records alike.
"""

from __future__ import annotations

import json
from pathlib import Path

from anogen_data.config import ExportConfig
from anogen_data.errors import AnogenError
from anogen_data.files import read_jsonl, sha256_file, split_metrics, write_json
from anogen_data.paths import check_plain_name
from anogen_data.records import IndexEntry, read_records
from anogen_data.schemas import ScoreRow, iter_rows
from anogen_data.stages.index import load_index_entries
from anogen_data.writers.version import write_version


def read_scores(path: Path, record_ids: list[str] | None = None) -> dict[str, dict]:
    """Filter rows of ``scores.jsonl`` (schema ``schemas.ScoreRow``) keyed by record id.

    Args:
        path: scores.jsonl of ``anogen-data filter``.
        record_ids: the ids of the records the scores rate; a score id outside them is refused.

    Raises:
        AnogenError: a row that is not a score row, an id twice, or an id that is not a record.
    """
    scores: dict[str, dict] = {}
    known = None if record_ids is None else set(record_ids)
    for lineno, row in iter_rows(Path(path), ScoreRow):
        if row.id in scores:
            raise AnogenError(f"{path}:{lineno}: id '{row.id}' repeats an earlier line; re-run `anogen-data filter`")
        if known is not None and row.id not in known:
            raise AnogenError(f"{path}:{lineno}: id '{row.id}' is not a record of --records; these scores rate "
                              "other records: re-run `anogen-data filter` on them")
        scores[row.id] = row.model_dump()
    return scores


def index_category(entries: list[IndexEntry], path: Path) -> str:
    """The one category of an index (raises when rows disagree or none is named)."""
    categories = {e.category for e in entries}
    if len(categories) != 1 or not next(iter(categories)):
        raise AnogenError(f"{path} must hold one named category, found {sorted(categories)}; re-run `anogen-data index`")
    return categories.pop()


def _sibling_config(path: Path | None) -> dict | None:
    """The ``config.json`` written beside a stage output, if any."""
    if path is None or not (Path(path).parent / "config.json").is_file():
        return None
    try:
        return json.loads((Path(path).parent / "config.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


def as_box_label(record, records_dir: Path):
    """The record as an AnoGen weak label: ``mask_quality`` "box" and ``bbox_xyxy`` the bounds of its mask
    (x1/y1 exclusive), so the version's mask is that filled box. A record already a box label is kept.

    Raises:
        AnogenError: the mask file has no defect pixel.
    """
    import dataclasses

    import numpy as np

    from anogen_data.data.image_io import read_mask

    if record.mask_quality == "box":
        return record
    mask_path = Path(records_dir) / record.mask_path
    ys, xs = np.nonzero(read_mask(mask_path))
    if ys.size == 0:
        raise AnogenError(f"{mask_path} (record {record.id}) has no defect pixel; it has no box to export")
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return dataclasses.replace(record, mask_quality="box", bbox_xyxy=box)


def run_export(config: ExportConfig, index_file: Path, out_root: Path, *, records_file: Path | None = None,
               scores_file: Path | None = None, name: str | None = None, version: int | None = None,
               concepts_dir: Path | None = None, stats_out: Path | None = None, box_labels: bool = False) -> Path:
    """Write a dataset version from the stage's input files; returns the version folder.

    Args:
        config: export options.
        index_file: ``index.jsonl`` (real images and their roles).
        out_root: folder of dataset names (e.g. ``datasets``).
        records_file: ``records.jsonl`` of ``generate --no-export``; image paths are relative to its folder.
        scores_file: ``scores.jsonl`` of ``filter``; only kept records are written (``config.show_dropped``
            draws the dropped ones on ``dropped_sheet.png``).
        name: dataset name; the index's category when None.
        version: N of ``v<N>``; the next free number when None.
        concepts_dir: learned concepts folder whose files are hashed into the lineage.
        stats_out: also write the numbers of the version's ``stats.json`` here (a git-tracked DVC metric
            outside the cached version, so ``dvc metrics diff`` needs no cache).
        box_labels: write every synthetic record as a box label (``mask_quality: box``, the mask's box):
            AnoGen's weak labels from any backend, so its stage 3 can be measured on CPU.
    """
    if scores_file is not None and records_file is None:
        raise AnogenError("--scores needs --records: the scores rate synthetic records")
    if name is not None:
        check_plain_name(name, "--name")
    entries = load_index_entries(Path(index_file))
    category = index_category(entries, Path(index_file))
    records = read_records(records_file, index=entries) if records_file is not None else []
    if box_labels:
        records = [as_box_label(r, Path(records_file).parent) for r in records]
    scores = read_scores(scores_file, [r.id for r in records]) if scores_file is not None else None
    lineage: dict = {"index_file": str(index_file), "index_sha256": sha256_file(index_file)}
    configs = {}
    for stage, path in (("index", index_file), ("generate", records_file), ("filter", scores_file)):
        if path is not None:
            lineage[f"{stage}_output_sha256" if stage != "index" else "index_sha256"] = sha256_file(path)
            if (cfg := _sibling_config(path)) is not None:
                configs[stage] = cfg
    if concepts_dir is not None:
        lineage["concepts_dir"] = str(concepts_dir)
    from anogen_data.stages.propose import read_placement  # here: stages.propose imports this module

    if records_file is not None and (placement := read_placement(Path(records_file).parent)) is not None:
        lineage["placement"] = placement  # propose's sidecar, carried by generate beside records.jsonl
    if box_labels:
        lineage["box_labels"] = True
    folder = write_version(
        Path(out_root), name or category, category=category, index=entries, records=records,
        records_dir=Path(records_file).parent if records_file is not None else None, scores=scores,
        version=version, lineage=lineage, configs=configs, config=config,
    )
    if stats_out is not None:
        write_stats_metric(folder / "stats.json", Path(stats_out))
    return folder


def write_stats_metric(stats_file: Path, out: Path) -> None:
    """Write the numbers of ``stats_file`` to ``out`` atomically (lists such as histograms stay in the version)."""
    numbers, _ = split_metrics(json.loads(stats_file.read_text(encoding="utf-8")))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    write_json(tmp, numbers)
    tmp.replace(out)
