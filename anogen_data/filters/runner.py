"""Score every synthetic sample with every filter, then decide keep/drop with the user's thresholds.

The filters (one module each): ``mask_sanity`` (area, pieces, on the object), ``change`` (mask-image
agreement, background leakage), ``realism`` (EfficientNet-Lite0 feature distance to the real learn
shots and to the good surface) and ``duplicates``. A sample is kept when no threshold is crossed; every
crossed threshold adds a reason "<score name>: <value> <op> <threshold>", so each reason names its filter
(``filters.rates`` counts pass rates per score name, for the filter stage and the writers alike). Methods filtered: AnoGen (Gui et al., ECCV 2024),
DualAnoDiff (Jin et al., CVPR 2025) and the CPU backends alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anogen_data.config import FilterConfig
from anogen_data.data.image_io import read_image, read_mask
from anogen_data.errors import AnogenError
from anogen_data.filters.change import agreement_scores
from anogen_data.filters.duplicates import near_duplicates
from anogen_data.filters.embed import Embedder, crop
from anogen_data.filters.mask_sanity import mask_sanity_scores
from anogen_data.filters.realism import defect_crop_box, realism_scores, reference_embeddings
from anogen_data.records import IndexEntry, SynthRecord

# (score name, config field, op): the sample fails when ``value op threshold`` holds.
THRESHOLDS = (
    ("mask_area", "min_area", "<"),
    ("mask_area", "max_area", ">"),
    ("mask_components", "max_components", ">"),
    ("mask_foreground", "min_foreground", "<"),
    ("change_iou", "min_change_iou", "<"),
    ("leakage", "max_leakage", ">"),
    ("defect_distance", "max_defect_distance", ">"),
    ("good_distance", "min_good_distance", "<"),
)


@dataclass(frozen=True)
class LoadedSample:
    """One record's pixels: image and source uint8 (H, W, 3), mask uint8 (H, W) (255 = defect)."""

    record: SynthRecord
    image: np.ndarray
    source: np.ndarray
    mask: np.ndarray


def resolve(path: str, base: Path) -> Path:
    """A record path: absolute as is, else relative to the records file's folder."""
    return Path(path) if Path(path).is_absolute() else Path(base) / path


def load_sample(record: SynthRecord, records_dir: Path) -> LoadedSample:
    """Read a record's image, its source and its mask (``extra["refined_mask_path"]`` when present)."""
    mask_path = resolve(record.extra.get("refined_mask_path") or record.mask_path, records_dir)
    image_path = resolve(record.image_path, records_dir)
    image, source = read_image(image_path), read_image(resolve(record.source_path, records_dir))
    mask = read_mask(mask_path)
    if image.shape != source.shape or mask.shape != image.shape[:2]:
        raise AnogenError(
            f"{image_path}: image {image.shape[:2]}, mask {mask.shape} and source {source.shape[:2]} differ in "
            f"size; re-run `anogen-data generate` (outputs keep the source size)"
        )
    return LoadedSample(record, image, source, mask)


def reasons_for(scores: dict[str, float], config: FilterConfig) -> list[str]:
    """Reasons, in THRESHOLDS order, for every threshold the scores cross (missing scores never fail)."""
    reasons = []
    for name, field, op in THRESHOLDS:
        if name not in scores:
            continue
        value, limit = scores[name], getattr(config, field)
        if (value < limit) if op == "<" else (value > limit):
            reasons.append(f"{name}: {value:.4g} {op} {limit:g}")
    return reasons


class FilterStack:
    """Every per-sample filter with its shared state (backbone, reference crops, foregrounds).

    Args:
        config: thresholds and crop settings.
        learn: index rows with role "learn" (the real defect shots realism compares with).
        foreground: callable source path -> uint8 (H, W) object mask (255 = object), or None (texture).
        embedder: the backbone wrapper (pass one in to share it; built when None).
    """

    def __init__(self, config: FilterConfig, learn: Sequence[IndexEntry],
                 foreground: Callable[[str], np.ndarray | None], embedder: Embedder | None = None):
        self.config = config
        self.foreground = foreground
        self.embedder = embedder or Embedder(config.batch_size)
        self.references = reference_embeddings(learn, self.embedder, size=config.crop_size, pad=config.crop_pad,
                                                min_side=config.crop_min_side)

    def pixel_scores(self, sample: LoadedSample) -> dict[str, float]:
        """Mask-sanity and agreement scores of one sample (no backbone)."""
        cfg = self.config
        radius = round(cfg.leak_radius * max(sample.mask.shape))
        scores = mask_sanity_scores(sample.mask, self.foreground(sample.record.source_path))
        scores.update(agreement_scores(sample.image, sample.source, sample.mask, threshold=cfg.change_threshold,
                                       radius=radius))
        return scores

    def crops(self, sample: LoadedSample) -> tuple[np.ndarray, np.ndarray]:
        """(generated, source) uint8 (S, S, 3) crops around the sample's defect."""
        cfg = self.config
        box = defect_crop_box(sample.mask, sample.record.bbox_xyxy, pad=cfg.crop_pad, min_side=cfg.crop_min_side)
        return crop(sample.image, box, cfg.crop_size), crop(sample.source, box, cfg.crop_size)

    def score_batch(self, samples: Sequence[LoadedSample]) -> tuple[list[dict[str, float]], np.ndarray]:
        """Scores of a batch and the unit-length embeddings (N, 1280) of their generated defect crops."""
        pairs = [self.crops(s) for s in samples]
        embeddings = self.embedder([g for g, _ in pairs] + [s for _, s in pairs])
        generated, sources = embeddings[: len(samples)], embeddings[len(samples):]
        rows = []
        for i, sample in enumerate(samples):
            scores = self.pixel_scores(sample)
            scores.update(realism_scores(generated[i], sources[i], self.references.get(sample.record.defect_type)))
            rows.append(scores)
        return rows, generated


def decide(ids: Sequence[str], scores: Sequence[dict[str, float]], embeddings: np.ndarray,
           config: FilterConfig) -> list[dict]:
    """scores.jsonl rows ``{"id", "keep", "reasons", "scores"}``: thresholds, then the duplicate scan."""
    reasons = [reasons_for(s, config) for s in scores]
    duplicates = near_duplicates(embeddings, [not r for r in reasons], config.max_duplicate)
    rows = []
    for i, (sim, of) in enumerate(duplicates):
        row_scores = {**scores[i], "duplicate": sim}
        if sim > config.max_duplicate:
            reasons[i].append(f"duplicate: {sim:.4g} > {config.max_duplicate:g} (of {ids[of]})")
        rows.append({"id": ids[i], "keep": not reasons[i], "reasons": reasons[i],
                     "scores": {k: round(float(v), 6) for k, v in sorted(row_scores.items())}})
    return rows
