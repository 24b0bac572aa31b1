"""Defect boxes: sizes from the real masks' box statistics, positions sampled on the foreground.

AnoGen (Gui et al., ECCV 2024) generates inside boxes; we size them like the real learn-shot boxes of
the defect type (relative to the image side, jittered) and centre them on a foreground pixel, keeping
the whole box inside the image. Boxes are XYXY with x1/y1 exclusive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from anogen_data.layout.rle import mask_bbox

DEFAULT_SIDE = (0.08, 0.3)  # box side as a fraction of the image side when there are no real masks


@dataclass(frozen=True)
class BoxStats:
    """Relative box sizes (w / W, h / H) of real defect masks; empty = use DEFAULT_SIDE."""

    sizes: tuple[tuple[float, float], ...] = ()

    @classmethod
    def from_masks(cls, masks: Sequence[np.ndarray]) -> BoxStats:
        """Statistics of uint8 (H, W) masks (empty masks are skipped)."""
        sizes = []
        for mask in masks:
            box = mask_bbox(mask)
            if box is not None:
                h, w = mask.shape
                sizes.append(((box[2] - box[0]) / w, (box[3] - box[1]) / h))
        return cls(tuple(sizes))

    def sample(self, rng: np.random.Generator, image_hw: tuple[int, int]) -> tuple[int, int]:
        """A (height, width) in pixels: a real box size jittered by x[0.75, 1.25], at least 4 px."""
        h, w = image_hw
        if self.sizes:
            rw, rh = self.sizes[int(rng.integers(len(self.sizes)))]
            jitter = rng.uniform(0.75, 1.25, size=2)
            rw, rh = rw * jitter[0], rh * jitter[1]
        else:
            rw, rh = rng.uniform(*DEFAULT_SIDE, size=2)
        return int(np.clip(round(rh * h), 4, 0.9 * h)), int(np.clip(round(rw * w), 4, 0.9 * w))


def place_box(
    shape_hw: tuple[int, int], foreground: np.ndarray, rng: np.random.Generator, weights: np.ndarray | None = None,
) -> tuple[int, int, int, int]:
    """An XYXY box of size ``shape_hw`` centred on a random foreground pixel, shifted to lie inside.

    Args:
        shape_hw: (height, width) of the box; must fit in the image.
        foreground: uint8 (H, W), 255 = where defects may go (all-zero: anywhere).
        rng: the sample's generator.
        weights: optional float (H, W) >= 0, not all 0: the centre is drawn with probability proportional
            to it (a density of real defect positions) instead of uniformly over the foreground.
    """
    H, W = foreground.shape
    bh, bw = min(shape_hw[0], H), min(shape_hw[1], W)
    if weights is not None:
        flat = weights.astype(np.float64).ravel()
        k = int(rng.choice(flat.size, p=flat / flat.sum()))
        cy, cx = divmod(k, W)
        x0 = int(np.clip(cx - bw // 2, 0, W - bw))
        y0 = int(np.clip(cy - bh // 2, 0, H - bh))
        return x0, y0, x0 + bw, y0 + bh
    ys, xs = np.nonzero(foreground)
    if ys.size:
        k = int(rng.integers(ys.size))
        cy, cx = int(ys[k]), int(xs[k])
    else:
        cy, cx = int(rng.integers(H)), int(rng.integers(W))
    x0 = int(np.clip(cx - bw // 2, 0, W - bw))
    y0 = int(np.clip(cy - bh // 2, 0, H - bh))
    return x0, y0, x0 + bw, y0 + bh
