"""The records that flow between stages, as files (index.jsonl, layouts.jsonl, records.jsonl).

Box formats: ``bbox_xyxy`` (x0, y0, x1, y1; x1/y1 exclusive) inside the package, ``bbox_xywh`` on
disk in COCO files. Masks on disk are PNG files, uint8 (H, W), 255 = defect.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from anogen_data import schemas
from anogen_data.errors import AnogenError
from anogen_data.files import write_jsonl
from anogen_data.paths import index_image_parts, inside

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
        sha256: hex sha256 of the image file's bytes ("" in indexes written before it was recorded);
            the index drops an eval image byte-identical to a train/learn one (``data.split``).
    """

    path: str
    split: Split
    label: Label
    defect_type: str
    mask_path: str | None
    width: int
    height: int
    sha256: str = field(default="", kw_only=True)  # keyword-only: positional Sample/IndexEntry calls keep working


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


def _rows(cls, model, path: Path, upgrade=None) -> list[tuple[int, Any]]:
    """(line number, ``cls`` instance) of each row, validated by ``model`` of ``anogen_data.schemas``."""
    out = []
    for lineno, row in schemas.iter_rows(path, model, upgrade):
        values = row.model_dump()
        if "mask_rle" in values:
            values["mask_rle"] = {"size": list(values["mask_rle"]["size"]), "counts": values["mask_rle"]["counts"]}
        out.append((lineno, cls(**values)))
    return out


def read_index(path: Path) -> list[IndexEntry]:
    """Read ``index.jsonl`` (schema ``schemas.IndexRow``): every image inside one ``<root>/<category>/``.

    Raises:
        AnogenError: a line that is not an index row (file, line and field named), or rows from two
            data folders.
    """
    path = Path(path)
    rows = _rows(IndexEntry, schemas.IndexRow, path)
    folders: dict[Path, int] = {}
    for lineno, entry in rows:
        folder = index_image_parts(entry.path)[0]
        folders.setdefault(folder, lineno)
        if len(folders) > 1:
            first = next(iter(folders))
            raise AnogenError(f"{path}:{lineno}: path {entry.path} is outside the category folder {first} of line "
                              f"{folders[first]}; an index holds one category of one data folder")
    return [entry for _, entry in rows]


def write_index(path: Path, entries: list[IndexEntry]) -> int:
    return write_jsonl(path, (to_row(e) for e in entries))


def _duplicate_ids(rows: list[tuple[int, Any]], path: Path) -> None:
    seen: dict[str, int] = {}
    for lineno, row in rows:
        if row.id in seen:
            raise AnogenError(f"{path}:{lineno}: id '{row.id}' repeats line {seen[row.id]}; ids must be unique")
        seen[row.id] = lineno


def _sources(index: list[IndexEntry] | None, roles: tuple[str, ...]) -> dict[str, IndexEntry] | None:
    return None if index is None else {e.path: e for e in index if e.role in roles}


def read_records(path: Path, index: list[IndexEntry] | None = None) -> list[SynthRecord]:
    """Read ``records.jsonl`` (schema ``schemas.RecordRow``); image/mask paths stay relative to its folder.

    Each ``image_path``/``mask_path`` must resolve inside the records file's folder; with ``index`` each
    ``source_path`` must be one of its train/learn images (never eval) and the box must fit that image.

    Raises:
        AnogenError: one line naming the file, line and field.
    """
    path = Path(path)
    rows = _rows(SynthRecord, schemas.RecordRow, path)
    _duplicate_ids(rows, path)
    allowed = _sources(index, ("train", "learn"))
    for lineno, record in rows:
        for key in ("image_path", "mask_path"):
            inside(path.parent, getattr(record, key), f"{path}:{lineno}: {key}")
        if allowed is not None:
            _check_source(path, lineno, record, allowed)
    return [record for _, record in rows]


def read_layouts(path: Path, index: list[IndexEntry] | None = None) -> list[Layout]:
    """Read ``layouts.jsonl`` (schema ``schemas.LayoutRow``; old packed ``shape_source`` rows too, see
    ``upgrade_layout_row``); with ``index`` each ``source_path`` must be one of its good train images and
    the mask must have that image's size.

    Raises:
        AnogenError: one line naming the file, line and field (a repeated id too).
    """
    path = Path(path)
    rows = _rows(Layout, schemas.LayoutRow, path, upgrade=upgrade_layout_row)
    _duplicate_ids(rows, path)
    allowed = _sources(index, ("train",))
    if allowed is not None:
        for lineno, layout in rows:
            entry = _check_source(path, lineno, layout, allowed)
            if list(layout.mask_rle["size"]) != [entry.height, entry.width]:
                raise AnogenError(f"{path}:{lineno}: mask_rle.size {layout.mask_rle['size']} is not the "
                                  f"{entry.width}x{entry.height} size of source_path {entry.path}")
    return [layout for _, layout in rows]


def _check_source(path: Path, lineno: int, row, allowed: dict[str, IndexEntry]) -> IndexEntry:
    entry = allowed.get(row.source_path)
    if entry is None:
        raise AnogenError(f"{path}:{lineno}: source_path {row.source_path} is not a train/learn image of the index "
                          "(eval images are held out); regenerate from this index")
    x0, y0, x1, y1 = row.bbox_xyxy
    if x1 > entry.width or y1 > entry.height:
        raise AnogenError(f"{path}:{lineno}: bbox_xyxy {list(row.bbox_xyxy)} lies outside the "
                          f"{entry.width}x{entry.height} source image")
    return entry


def write_layouts(path: Path, layouts: list[Layout]) -> int:
    return write_jsonl(path, (to_row(x) for x in layouts))


def write_records(path: Path, records: list[SynthRecord]) -> int:
    return write_jsonl(path, (to_row(r) for r in records))
