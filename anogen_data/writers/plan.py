"""What goes where in a dataset version: one ``ExportItem`` per image, decided from metadata only.

The rule (documented in the dataset card; file names in ``writers.mvtec``): index role "train" ->
``mvtec/<c>/train/good``; role "eval" good -> ``mvtec/<c>/test/good``; role "eval" anomalies ->
``mvtec/<c>/test/<defect>`` + ground truth (so the MVTec tree is strictly MVTec AD and its test split
holds only real, held-out images); role "learn" anomalies (the few real shots the generator saw) ->
``synthetic/<c>/images/<defect>/real_NNN`` when ``include_learn``; synthetic records ->
``synthetic/<c>/images/<defect>/syn_NNNNNN`` (masks under ``synthetic/<c>/masks/``, same names).
When filter scores are given only records with ``keep`` true are written; the dropped ones can be
yielded too, marked with their first reason, for the dropped-samples contact sheet (never written).

Items are yielded lazily, so planning never holds pixels and memory does not grow with the image count.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from anogen_data.errors import AnogenError
from anogen_data.records import IndexEntry, SynthRecord
from anogen_data.writers.mvtec import MvtecNamer


@dataclass(frozen=True)
class ExportItem:
    """One image to write.

    Attributes:
        split: "train" or "test" (training data, or the held-out real test split of the MVTec tree).
        label: "good" or "anomaly".
        defect_type: "good" or the defect folder name.
        source: "real" or "synthetic".
        image_src, mask_src: files to read (mask_src None for good images).
        mask_quality: "pixel", "box" (ground truth is the filled ``bbox_xyxy``) or None for good images.
        bbox_xyxy: the record's box (x0, y0, x1, y1), x1/y1 exclusive; used when mask_quality is "box".
        image_rel, mask_rel: destination paths relative to the version folder.
        backend, seed: synthesis backend and per-sample seed (None for real images).
        record: the synthetic record, rewritten to the destination paths (None for real images).
        dropped_reason: set on a record the filter dropped (its first reason): drawn on the dropped sheet,
            never written (no destination path).
    """

    split: str
    label: str
    defect_type: str
    source: str
    image_src: Path
    mask_src: Path | None
    mask_quality: str | None
    bbox_xyxy: tuple[int, int, int, int] | None
    image_rel: str
    mask_rel: str | None
    backend: str | None = None
    seed: int | None = None
    record: SynthRecord | None = None
    dropped_reason: str | None = None


def _real_item(entry: IndexEntry, namer: MvtecNamer, include_learn: bool) -> ExportItem | None:
    if entry.label == "good":
        split = "test" if entry.role == "eval" else "train"
        image_rel, _ = namer.good(split)
        return ExportItem(split, "good", "good", "real", Path(entry.path), None, None, None, image_rel, None)
    if entry.mask_path is None:
        raise AnogenError(f"index row for {entry.path} is an anomaly without a mask_path; re-run `anogen-data index`")
    if entry.role == "train":
        raise AnogenError(
            f"index row for {entry.path} is an anomaly with role 'train'; anomalies are 'learn' or 'eval': "
            "re-run `anogen-data index`"
        )
    if entry.role == "learn" and not include_learn:
        return None
    split = "test" if entry.role == "eval" else "train"
    image_rel, mask_rel = namer.anomaly(split, entry.defect_type, "real")
    return ExportItem(
        split, "anomaly", entry.defect_type, "real", Path(entry.path), Path(entry.mask_path), "pixel", None,
        image_rel, mask_rel,
    )


def _synthetic_item(record: SynthRecord, records_dir: Path, namer: MvtecNamer) -> ExportItem:
    if record.mask_quality not in ("pixel", "box"):
        raise AnogenError(f"record {record.id}: mask_quality '{record.mask_quality}' is not 'pixel' or 'box'")
    image_rel, mask_rel = namer.anomaly("train", record.defect_type, "synthetic")
    rewritten = dataclasses.replace(record, image_path=image_rel, mask_path=mask_rel)
    return ExportItem(
        "train", "anomaly", record.defect_type, "synthetic", records_dir / record.image_path,
        records_dir / record.mask_path, record.mask_quality, tuple(record.bbox_xyxy), image_rel, mask_rel,
        backend=record.backend, seed=record.seed, record=rewritten,
    )


def dropped_item(record: SynthRecord, records_dir: Path, reason: str) -> ExportItem:
    """A dropped record as an item to draw on the dropped sheet only (no destination path: never written)."""
    mask = records_dir / record.mask_path if record.mask_path else None
    return ExportItem(
        "train", "anomaly", record.defect_type, "synthetic", records_dir / record.image_path, mask,
        record.mask_quality, tuple(record.bbox_xyxy), "", None, backend=record.backend, seed=record.seed,
        dropped_reason=reason,
    )


def _check_category(what: str, found: str, category: str) -> None:
    if found and found != category:
        raise AnogenError(f"{what} belongs to category '{found}', not '{category}'; export one category per version")


def plan_items(
    category: str,
    index: Iterable[IndexEntry],
    records: Iterable[SynthRecord] = (),
    records_dir: Path | None = None,
    scores: dict[str, dict] | None = None,
    include_learn: bool = True,
    with_dropped: bool = False,
) -> Iterator[ExportItem]:
    """Yield the items of a version: real images in index order, then kept synthetic records in order.

    With ``with_dropped`` the records the scores drop are yielded too, in record order, as
    ``dropped_item``s (``dropped_reason`` set: the consumer draws them and never writes them).

    Raises:
        AnogenError: a row of another category, an anomaly without a mask, a record missing from
            ``scores``, or a duplicated record id.
    """
    namer = MvtecNamer(category)
    for entry in index:
        _check_category(f"index row {entry.path}", entry.category, category)
        item = _real_item(entry, namer, include_learn)
        if item is not None:
            yield item
    base = Path(records_dir) if records_dir is not None else Path.cwd()
    seen: set[str] = set()
    for record in records:
        _check_category(f"record {record.id}", record.category, category)
        if record.id in seen:
            raise AnogenError(f"record id {record.id} appears twice in the records; ids must be unique")
        seen.add(record.id)
        if scores is not None:
            if record.id not in scores:
                raise AnogenError(f"record {record.id} has no row in the filter scores; re-run `anogen-data filter`")
            if not scores[record.id].get("keep", False):
                if with_dropped:
                    reasons = scores[record.id].get("reasons") or ["dropped"]
                    yield dropped_item(record, base, str(reasons[0]))
                continue
        yield _synthetic_item(record, base, namer)
