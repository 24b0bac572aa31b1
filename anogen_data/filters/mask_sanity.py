"""Mask sanity: is the label a plausible defect at all? (area, number of pieces, on the object).

Failures the generators of AnoGen (Gui et al., ECCV 2024) and DualAnoDiff (Jin et al., CVPR 2025) and
the CPU backends all produce: empty masks (nothing was made), masks covering half the image, confetti
of many tiny pieces, and defects placed on the background instead of the object.

Masks are uint8 (H, W) with 255 = defect; foregrounds are uint8 (H, W) with 255 = object.
"""

from __future__ import annotations

import cv2
import numpy as np


def mask_area_fraction(mask: np.ndarray) -> float:
    """Share of the image the mask covers, in [0, 1]."""
    return float(np.count_nonzero(mask > 127)) / mask.size


def mask_components(mask: np.ndarray, min_share: float = 0.01, min_pixels: int = 4) -> int:
    """Number of 8-connected defect pieces holding at least ``min_share`` of the mask's pixels and at
    least ``min_pixels`` pixels. Specks on a ragged border (warped or thresholded masks) do not count;
    confetti of many similar small pieces does."""
    count, _, stats, _ = cv2.connectedComponentsWithStats((mask > 127).astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    return int(np.count_nonzero(areas >= max(min_pixels, min_share * areas.sum())))


def mask_foreground_fraction(mask: np.ndarray, foreground: np.ndarray | None) -> float:
    """Share of the defect pixels that lie on the object, in [0, 1].

    1.0 when no foreground is known (texture categories) or the mask is empty (nothing is off the
    object; the empty mask is the area check's failure, not this one's).
    """
    defect = mask > 127
    total = np.count_nonzero(defect)
    if foreground is None or total == 0:
        return 1.0
    if foreground.shape != mask.shape:
        foreground = cv2.resize(foreground, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_NEAREST)
    return float(np.count_nonzero(defect & (foreground > 127))) / total


def mask_sanity_scores(mask: np.ndarray, foreground: np.ndarray | None) -> dict[str, float]:
    """The three mask-sanity scores of one sample: ``mask_area``, ``mask_components``, ``mask_foreground``."""
    return {
        "mask_area": mask_area_fraction(mask),
        "mask_components": float(mask_components(mask)),
        "mask_foreground": mask_foreground_fraction(mask, foreground),
    }
