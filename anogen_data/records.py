"""The records that flow between stages, as files (index.jsonl, layouts.jsonl, records.jsonl).

Box formats: ``bbox_xyxy`` (x0, y0, x1, y1; x1/y1 exclusive) inside the package, ``bbox_xywh`` on
disk in COCO files. Masks on disk are PNG files, uint8 (H, W), 255 = defect.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from anogen_data.errors import AnogenError
from anogen_data.files import read_jsonl, write_jsonl

Split = Literal["train", "test"]
Label = Literal["good", "anomaly"]
Role = Literal["train", "learn", "eval"]


@dataclass(frozen=True)
class Sample:
    """One real image of a category, as found on disk.

    Attributes:
        path: absolute image path.
        split: "train" or "test" (the MVTec folder it came from).
        label: "good" or "anomaly".
        defect_type: "good" for good images, else the defect folder name.
        mask_path: absolute mask path for anomalies, None for good images.
        width, height: image size in pixels.
    """

    path: str
    split: Split
    label: Label
    defect_type: str
    mask_path: str | None
    width: int
    height: int


@dataclass(frozen=True)
class IndexEntry(Sample):
    """A Sample with its role in the few-shot protocol (one line of ``index.jsonl``).

    role: "train" (train/good: background for synthesis and detector training), "learn" (the few real
    anomalies that concept learning and the paste backend may see), "eval" (held out: test/good and
    the remaining anomalies; only the benchmark reads them).
    """

    role: Role = "eval"
    category: str = ""


@dataclass(frozen=True)
class Layout:
    """Where and what shape one synthetic defect will be (one line of ``layouts.jsonl``), decided
    before any pixel is made.

    Attributes:
        id: the sample stem, e.g. "syn_000001"; unique in a run, kept by the SynthRecord made from it.
        category, defect_type: what to make.
        source_path: the good image (role "train") the defect goes on.
        bbox_xyxy: the defect's box (x0, y0, x1, y1), x1/y1 exclusive, inside the image.
        mask_rle: pycocotools RLE of the full-image mask, {"size": [H, W], "counts": str}; 255 inside.
        seed: per-sample seed (derived from the run seed and the sample number).
        shape_source: what made the mask shape: "real" (a learn-shot mask, ``shot_mask``), "perlin" or
            "stroke".
        shot_mask: the learn-shot mask path of a real shape; None for synthetic shapes.
        placement: how a real shape was placed: "free" (warped, anywhere allowed), "polar" (at the learn
            shot's radius about the object centre, turned; see ``layout.propose``); None for synthetic shapes.

    Files written before these fields existed packed both into ``shape_source`` ("real:<path>",
    "real-polar:<path>"); ``read_layouts`` still reads them (``upgrade_layout_row``).
    """

    id: str
    category: str
    defect_type: str
    source_path: str
    bbox_xyxy: tuple[int, int, int, int]
    mask_rle: dict[str, Any]
    seed: int
    shape_source: str
    shot_mask: str | None = None
    placement: str | None = None


LEGACY_REAL_SOURCES = {"real:": "free", "real-polar:": "polar"}  # old packed ``shape_source`` prefixes


def upgrade_layout_row(row: dict) -> dict:
    """A ``layouts.jsonl`` row in the current form: an old packed ``shape_source`` ("real:<path>",
    "real-polar:<path>") becomes ``shape_source="real"`` + ``shot_mask`` + ``placement``."""
    source = row.get("shape_source") if isinstance(row, dict) else None
    if isinstance(source, str) and "shot_mask" not in row:
        for prefix in sorted(LEGACY_REAL_SOURCES, key=len, reverse=True):
            if source.startswith(prefix):
                return {**row, "shape_source": "real", "shot_mask": source[len(prefix):],
                        "placement": LEGACY_REAL_SOURCES[prefix]}
    return row


@dataclass(frozen=True)
class SynthRecord:
    """One synthetic anomaly (one line of ``records.jsonl``), written by ``generate``.

    Attributes:
        id: stem, e.g. "syn_000001"; unique in a run.
        category, defect_type: what was made.
        backend: synthesis backend name (key of ``synthesis.BACKENDS``).
        seed: per-sample seed; with ``recipe`` and the source it replays to the same bytes.
        source_path: the good image the anomaly was made on.
        image_path, mask_path: generated files (PNG), relative to the records file's folder.
        mask_quality: "pixel" (exact mask) or "box" (weak label: only ``bbox_xyxy`` is trusted).
        bbox_xyxy: the defect's box in pixels, (x0, y0, x1, y1), x1/y1 exclusive.
        recipe: the backend's JSON-able random parameters.
        extra: backend-specific facts (e.g. the BCM reference image of DualAnoDiff).
    """

    id: str
    category: str
    defect_type: str
    backend: str
    seed: int
    source_path: str
    image_path: str
    mask_path: str
    mask_quality: Literal["pixel", "box"]
    bbox_xyxy: tuple[int, int, int, int]
    recipe: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def to_row(record) -> dict:
    """A record as a JSON-able dict."""
    row = dataclasses.asdict(record)
    if "bbox_xyxy" in row:
        row["bbox_xyxy"] = list(row["bbox_xyxy"])
    return row


def _from_rows(cls, rows: list[dict], path: Path):
    names = {f.name for f in dataclasses.fields(cls)}
    out = []
    for lineno, row in enumerate(rows, 1):
        unknown = set(row) - names
        if unknown:
            raise AnogenError(f"{path}: line {lineno} has unknown keys {sorted(unknown)}")
        try:
            if "bbox_xyxy" in row:
                row = {**row, "bbox_xyxy": tuple(row["bbox_xyxy"])}
            out.append(cls(**row))
        except TypeError as exc:
            raise AnogenError(f"{path}: line {lineno} is not a {cls.__name__}: {exc}") from exc
    return out


def read_index(path: Path) -> list[IndexEntry]:
    """Read ``index.jsonl``."""
    return _from_rows(IndexEntry, read_jsonl(path), Path(path))


def write_index(path: Path, entries: list[IndexEntry]) -> int:
    return write_jsonl(path, (to_row(e) for e in entries))


def read_records(path: Path) -> list[SynthRecord]:
    """Read ``records.jsonl``; image/mask paths stay relative to its folder."""
    return _from_rows(SynthRecord, read_jsonl(path), Path(path))


def read_layouts(path: Path) -> list[Layout]:
    """Read ``layouts.jsonl`` (old packed ``shape_source`` rows too, see ``upgrade_layout_row``)."""
    return _from_rows(Layout, [upgrade_layout_row(row) for row in read_jsonl(path)], Path(path))


def write_layouts(path: Path, layouts: list[Layout]) -> int:
    return write_jsonl(path, (to_row(x) for x in layouts))


def write_records(path: Path, records: list[SynthRecord]) -> int:
    return write_jsonl(path, (to_row(r) for r in records))
