"""Foreground estimation from the good images alone (no external model), so defects land on the object.

Object categories (MVTec bottle, hazelnut, the demo washer) are photographed on a fairly uniform
background; texture categories (grid, tile, KolektorSDD) fill the frame. We build a background model
from the good set: the median CIE-Lab colour of the image borders and the spread of border pixels
around it. The foreground of one image is its (smoothed) Lab distance to that colour, thresholded with
Otsu (Otsu, IEEE SMC 1979), cleaned with morphology and small components dropped. A category is
treated as a texture (whole image = foreground) when Otsu finds no clear two-class split in the good
set, or when the split covers nearly the whole frame. ``mode="full"`` forces the whole image.

Masks are uint8 (H, W) with 255 = foreground; work happens at <= 256 px and is resized back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from anogen_data.errors import AnogenError

WORK_SIDE = 256  # long side of the working resolution: fast and plenty for a region estimate
MODES = ("auto", "full")


@dataclass(frozen=True)
class BackgroundModel:
    """What the good set says about its background.

    Attributes:
        colour: median Lab colour of the image borders (OpenCV 8-bit Lab scale).
        spread: 90th percentile of border pixels' Lab distance to ``colour`` (background noise).
        texture: True when the images have no separable background (whole image = foreground).
    """

    colour: tuple[float, float, float]
    spread: float
    texture: bool


def _small_lab(image: np.ndarray) -> np.ndarray:
    """Blurred Lab float32 (h, w, 3) at <= WORK_SIDE px of a uint8 RGB image."""
    h, w = image.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h, w))
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (5, 5), 0)
    return cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)


def _border(lab: np.ndarray) -> np.ndarray:
    """Pixels of the outer 4% frame, (N, 3)."""
    h, w = lab.shape[:2]
    b = max(1, round(0.04 * min(h, w)))
    frame = np.ones((h, w), bool)
    frame[b:-b, b:-b] = False
    return lab[frame]


def _distance(lab: np.ndarray, colour: np.ndarray) -> np.ndarray:
    return np.linalg.norm(lab - colour[None, None, :], axis=-1)


def _otsu(distance: np.ndarray) -> tuple[float, float]:
    """(threshold, separability) of Otsu on a distance map; separability = between / total variance."""
    top = float(distance.max()) or 1.0
    scaled = np.clip(distance / top * 255.0, 0, 255).astype(np.uint8)
    thr, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    hi = scaled > thr
    total = float(scaled.var()) or 1e-6
    if hi.all() or not hi.any():
        return thr / 255.0 * top, 0.0
    w1 = hi.mean()
    between = w1 * (1 - w1) * (float(scaled[hi].mean()) - float(scaled[~hi].mean())) ** 2
    return thr / 255.0 * top, between / total


def fit_background(images: Iterable[np.ndarray], *, min_separability: float = 0.7, max_fraction: float = 0.9) -> BackgroundModel:
    """Fit the background model on good images (uint8 RGB (H, W, 3), any sizes).

    Args:
        images: the category's good images (role "train").
        min_separability: below this median Otsu separability the set counts as a texture.
        max_fraction: above this median foreground fraction the set counts as a texture.
    """
    labs = [_small_lab(im) for im in images]
    if not labs:
        raise AnogenError("cannot estimate the foreground: the index has no good (role 'train') images")
    colour = np.median(np.concatenate([_border(lab) for lab in labs]), axis=0)
    spread = float(np.percentile(np.concatenate([_distance(_border(lab)[None], colour)[0] for lab in labs]), 90))
    seps, fracs = [], []
    for lab in labs:
        dist = _distance(lab, colour)
        thr, sep = _otsu(dist)
        seps.append(sep)
        fracs.append(float((dist > max(thr, 2 * spread)).mean()))
    texture = float(np.median(seps)) < min_separability or float(np.median(fracs)) > max_fraction
    return BackgroundModel(colour=tuple(float(c) for c in colour), spread=spread, texture=texture)


def foreground_mask(image: np.ndarray, model: BackgroundModel, mode: str = "auto") -> np.ndarray:
    """The foreground of one image: uint8 (H, W), 255 = object (where defects may go).

    Args:
        image: uint8 RGB (H, W, 3).
        model: from ``fit_background`` on the same category's good images.
        mode: "auto" (model decides object vs texture) or "full" (whole image).
    """
    if mode not in MODES:
        raise AnogenError(f"unknown foreground mode '{mode}'; choose one of {', '.join(MODES)}")
    h, w = image.shape[:2]
    if mode == "full" or model.texture:
        return np.full((h, w), 255, np.uint8)
    lab = _small_lab(image)
    dist = _distance(lab, np.asarray(model.colour, np.float32))
    thr, _ = _otsu(dist)
    small = (dist > max(thr, 2 * model.spread)).astype(np.uint8) * 255
    k = max(3, round(0.02 * max(small.shape)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    small = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel)
    small = cv2.morphologyEx(small, cv2.MORPH_OPEN, kernel)
    small = _drop_small_components(small, 0.01)
    if not small.any():
        return np.full((h, w), 255, np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def _drop_small_components(mask: np.ndarray, min_fraction: float) -> np.ndarray:
    """Keep connected components larger than ``min_fraction`` of the image."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_fraction * mask.size
    return np.where(keep[labels], 255, 0).astype(np.uint8)


def estimate_foreground(images: Sequence[np.ndarray], mode: str = "auto") -> list[np.ndarray]:
    """Foreground masks of ``images`` with a background model fitted on those same images.

    This is the entry point other modules use (e.g. DualAnoDiff's background compensation): pass the
    category's good images (uint8 RGB (H, W, 3)); get one uint8 (H, W) mask per image, 255 = object.
    For texture categories (or ``mode="full"``) every mask is all 255.
    """
    model = fit_background(images)
    return [foreground_mask(image, model, mode) for image in images]
