"""Realism in feature space: does the generated defect look like the real defects of its type, and
unlike the good surface it was made on?

AnoGen (Gui et al., ECCV 2024) and DualAnoDiff (Jin et al., CVPR 2025) learn a defect type from a few
real "learn" shots; a generated defect far from all of them in ImageNet feature space
(EfficientNet-Lite0 embeddings, see ``filters.embed``) is a different thing, and a defect whose crop
still looks like the source's crop at the same place is no defect at all (e.g. a faint blend).

Scores (cosine distances in [0, 2], in practice [0, 1]):
- ``defect_distance``: 1 - max cosine similarity to the real learn-shot crops of the same defect type;
- ``good_distance``: 1 - cosine similarity to the source (good) image's crop at the same box.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from anogen_data.data.image_io import read_image, read_mask
from anogen_data.filters.embed import Embedder, context_box, crop, mask_box
from anogen_data.records import IndexEntry


def defect_crop_box(mask: np.ndarray, fallback: tuple[int, int, int, int], *, pad: float,
                    min_side: int) -> tuple[int, int, int, int]:
    """The square context box of a sample's defect: around its mask, or ``fallback`` when the mask is empty."""
    height, width = mask.shape
    return context_box(mask_box(mask) or tuple(fallback), width, height, pad=pad, min_side=min_side)


def reference_embeddings(learn: Iterable[IndexEntry], embedder: Embedder, *, size: int, pad: float,
                         min_side: int) -> dict[str, np.ndarray]:
    """Embeddings of the real learn-shot defect crops, per defect type: {type: float32 (K, 1280)}."""
    crops: dict[str, list[np.ndarray]] = {}
    for entry in learn:
        if entry.mask_path is None:
            continue
        mask = read_mask(entry.mask_path)
        if not (mask > 127).any():
            continue
        box = defect_crop_box(mask, (0, 0, mask.shape[1], mask.shape[0]), pad=pad, min_side=min_side)
        crops.setdefault(entry.defect_type, []).append(crop(read_image(entry.path), box, size))
    names = sorted(crops)
    embedded = embedder([c for name in names for c in crops[name]])  # one call: full batches
    bounds = np.cumsum([0] + [len(crops[name]) for name in names])
    return {name: embedded[bounds[i]:bounds[i + 1]] for i, name in enumerate(names)}


def realism_scores(generated: np.ndarray, source: np.ndarray, references: np.ndarray | None) -> dict[str, float]:
    """Scores of one sample from unit-length embeddings (1280,) of its defect crop and the source crop.

    ``defect_distance`` is left out when the defect type has no learn shots (nothing to compare with).
    """
    scores = {"good_distance": float(1.0 - generated @ source)}
    if references is not None and len(references):
        scores["defect_distance"] = float(1.0 - (references @ generated).max())
    return scores
