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
from anogen_data.files import read_jsonl, sha256_file
from anogen_data.records import IndexEntry, read_records
from anogen_data.stages.index import load_index_entries
from anogen_data.writers.version import write_version


def read_scores(path: Path) -> dict[str, dict]:
    """Filter rows of ``scores.jsonl`` keyed by record id (each with ``keep``, ``reasons``, ``scores``).

    Raises:
        AnogenError: a row without ``id`` or ``keep``, or an id twice.
    """
    scores: dict[str, dict] = {}
    for lineno, row in enumerate(read_jsonl(path), 1):
        if "id" not in row or "keep" not in row:
            raise AnogenError(f"{path}:{lineno} lacks 'id' or 'keep'; write it with `anogen-data filter`")
        if row["id"] in scores:
            raise AnogenError(f"{path}:{lineno} repeats id {row['id']}; re-run `anogen-data filter`")
        scores[row["id"]] = row
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
               concepts_dir: Path | None = None, box_labels: bool = False) -> Path:
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
        box_labels: write every synthetic record as a box label (``mask_quality: box``, the mask's box):
            AnoGen's weak labels from any backend, so its stage 3 can be measured on CPU.
    """
    if scores_file is not None and records_file is None:
        raise AnogenError("--scores needs --records: the scores rate synthetic records")
    entries = load_index_entries(Path(index_file))
    category = index_category(entries, Path(index_file))
    records = read_records(records_file) if records_file is not None else []
    if box_labels:
        records = [as_box_label(r, Path(records_file).parent) for r in records]
    scores = read_scores(scores_file) if scores_file is not None else None
    lineage: dict = {"index_file": str(index_file), "index_sha256": sha256_file(index_file)}
    configs = {}
    for stage, path in (("index", index_file), ("generate", records_file), ("filter", scores_file)):
        if path is not None:
            lineage[f"{stage}_output_sha256" if stage != "index" else "index_sha256"] = sha256_file(path)
            if (cfg := _sibling_config(path)) is not None:
                configs[stage] = cfg
    if concepts_dir is not None:
        lineage["concepts_dir"] = str(concepts_dir)
    if box_labels:
        lineage["box_labels"] = True
    return write_version(
        Path(out_root), name or category, category=category, index=entries, records=records,
        records_dir=Path(records_file).parent if records_file is not None else None, scores=scores,
        version=version, lineage=lineage, configs=configs, config=config,
    )
