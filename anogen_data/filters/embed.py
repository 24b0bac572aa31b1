"""Defect crops and their EfficientNet-Lite0 embeddings, shared by the realism and duplicate filters
and by the dataset metrics.

Backbone: EfficientNet-Lite0 (Tan & Le, ICML 2019) with its ImageNet weights
(``anogen_data.features.efficientnet_lite``). Embeddings are its pooled 1280-d head features,
L2-normalised so that a dot product is a cosine similarity in [-1, 1] (in practice [0, 1]: the
features are ReLU6 outputs).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np
import torch

from anogen_data.features.efficientnet_lite import load_efficientnet_lite0

Box = tuple[int, int, int, int]


def context_box(box: Box, width: int, height: int, *, pad: float, min_side: int) -> Box:
    """A square box around ``box`` (x0, y0, x1, y1; exclusive ends), grown by ``pad`` of its long side
    on each side, at least ``min_side`` px, shifted (not shrunk) to stay inside a width x height image."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)
    side = min(max(round(side * (1 + 2 * pad)), min_side), width, height)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    nx0 = int(min(max(round(cx - side / 2), 0), width - side))
    ny0 = int(min(max(round(cy - side / 2), 0), height - side))
    return nx0, ny0, nx0 + side, ny0 + side


def mask_box(mask: np.ndarray) -> Box | None:
    """Tight box (x0, y0, x1, y1) of the defect pixels (255) of a uint8 (H, W) mask; None when empty."""
    ys, xs = np.nonzero(mask > 127)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def crop(image: np.ndarray, box: Box, size: int) -> np.ndarray:
    """The ``box`` region of a uint8 (H, W, 3) image resized to uint8 (size, size, 3) (area filter)."""
    x0, y0, x1, y1 = box
    region = image[y0:y1, x0:x1]
    interpolation = cv2.INTER_AREA if region.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(region, (size, size), interpolation=interpolation)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """A whole uint8 (H, W, 3) image resized to (size, size, 3), as for the dataset metrics."""
    return crop(image, (0, 0, image.shape[1], image.shape[0]), size)


@lru_cache(maxsize=2)
def shared_backbone(pretrained: bool = True):
    """One frozen EfficientNet-Lite0 per process (eval mode, no gradients, batch norms folded: safe to share)."""
    return load_efficientnet_lite0(pretrained=pretrained, fuse=True)


class Embedder:
    """Batched, L2-normalised EfficientNet-Lite0 embeddings of uint8 RGB crops.

    Args:
        batch_size: crops per forward pass (memory bound: 16 crops of 128 px take ~60 MB).
        pretrained: False only in tests of the plumbing (random weights are not a quality measure).
    """

    def __init__(self, batch_size: int = 16, pretrained: bool = True):
        self.model = shared_backbone(pretrained)
        self.batch_size = batch_size

    @torch.inference_mode()
    def __call__(self, crops: Sequence[np.ndarray], normalize: bool = True) -> np.ndarray:
        """float32 (N, 1280) for N uint8 (S, S, 3) crops (one size per call): rows of unit length, or the
        raw pooled features (>= 0, as KID expects them) when ``normalize`` is False."""
        if len(crops) == 0:
            return np.zeros((0, 1280), np.float32)
        out = []
        for start in range(0, len(crops), self.batch_size):
            batch = torch.from_numpy(np.stack(crops[start:start + self.batch_size]))
            batch = batch.permute(0, 3, 1, 2).float().div_(255)
            features = self.model.embed(batch)
            out.append(torch.nn.functional.normalize(features, dim=1) if normalize else features)
        return torch.cat(out).numpy()
