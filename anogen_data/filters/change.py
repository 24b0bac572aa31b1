"""Mask-image agreement and background leakage: does the mask say where the pixels actually changed?

A synthetic anomaly is a source (good) image plus a change. The change map is where the generated
image differs visibly from its source (max channel difference above a threshold). A faithful label has
a high IoU with the change map (AnoGen's weak box labels are refined this same way, Gui et al.,
ECCV 2024), and almost no change falls outside the (dilated) mask: change there is "leakage", e.g. a
defect pasted beside its mask, or a diffusion model that repainted the background (DualAnoDiff's
background compensation, Jin et al., CVPR 2025, exists to prevent exactly that).

Images are uint8 RGB (H, W, 3); masks uint8 (H, W), 255 = defect.
"""

from __future__ import annotations

import cv2
import numpy as np

from anogen_data.errors import AnogenError


def change_map(image: np.ndarray, source: np.ndarray, threshold: int) -> np.ndarray:
    """bool (H, W): pixels whose largest channel difference to the source exceeds ``threshold`` (0-255)."""
    if image.shape != source.shape:
        raise AnogenError(
            f"generated image {image.shape} and its source {source.shape} differ in size; "
            "re-run `anogen-data generate` (images must keep the source size)"
        )
    diff = cv2.absdiff(image, source)
    return diff.max(axis=2) > threshold


def change_iou(mask: np.ndarray, changed: np.ndarray) -> float:
    """IoU in [0, 1] of the defect mask and the change map (0 when both are empty: nothing was made)."""
    defect = mask > 127
    union = np.count_nonzero(defect | changed)
    return float(np.count_nonzero(defect & changed)) / union if union else 0.0


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """bool (H, W): the defect mask grown by ``radius`` pixels (elliptic structuring element)."""
    defect = (mask > 127).astype(np.uint8)
    if radius <= 0:
        return defect.astype(bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(defect, kernel).astype(bool)


def leakage(mask: np.ndarray, changed: np.ndarray, radius: int) -> float:
    """Changed pixels outside the mask grown by ``radius``, relative to the defect's size, >= 0.

    Normalised by max(mask area, changed area) so that the score reads "how much stray change per
    unit of defect" at any resolution: 0 for a clean sample, ~1 for a defect made entirely beside its mask.
    """
    outside = np.count_nonzero(changed & ~dilate(mask, radius))
    size = max(np.count_nonzero(mask > 127), np.count_nonzero(changed), 1)
    return float(outside) / size


def agreement_scores(image: np.ndarray, source: np.ndarray, mask: np.ndarray, *, threshold: int,
                     radius: int) -> dict[str, float]:
    """``change_iou`` and ``leakage`` of one sample (see the functions above)."""
    changed = change_map(image, source, threshold)
    return {"change_iou": change_iou(mask, changed), "leakage": leakage(mask, changed, radius)}
