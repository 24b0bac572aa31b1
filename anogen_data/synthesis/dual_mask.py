"""The pixel mask of a DualAnoDiff sample, derived from its part image (no external saliency model).

Paper: Jin et al., "DualAnoDiff", CVPR 2025 (arXiv:2408.13509). The release writes no mask and tells
users to run U-2-Net on the part images, which often disagrees with the whole image. Our part branch is
trained on parts rendered on black, so the defect is what is not black:

1. threshold the part image against black (max over RGB > ``black_threshold``);
2. morphology: open (drop specks), then close (fill pinholes);
3. keep only the connected components that overlap where the whole image differs from its BCM
   background (max RGB difference > ``diff_threshold``), so the mask sits where the whole image
   actually changed. When no component overlaps, the largest one is kept (the part branch always
   draws a defect; an untrained model may draw it elsewhere).
4. optionally (``fuse_attention``) blend in the part branch's cross-attention map to its "sks" token.

All images uint8 RGB (H, W, 3); masks uint8 (H, W) in {0, 255}, 255 = defect.
"""

from __future__ import annotations

import cv2
import numpy as np


def _ellipse(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def part_foreground(part: np.ndarray, black_threshold: int = 24, open_px: int = 3, close_px: int = 5) -> np.ndarray:
    """Non-black pixels of a part image, cleaned by opening then closing: uint8 (H, W) {0, 255}.

    Args:
        part: uint8 (H, W, 3), the defect on black.
        black_threshold: a pixel is part of the defect when its brightest channel exceeds this.
        open_px, close_px: elliptical kernel sides (pixels) for opening and closing; 0 or 1 skips.
    """
    mask = (part.max(axis=2) > black_threshold).astype(np.uint8) * 255
    if open_px > 1:
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _ellipse(open_px))
    if close_px > 1:
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _ellipse(close_px))
    return mask


def change_map(whole: np.ndarray, background: np.ndarray, diff_threshold: int = 24) -> np.ndarray:
    """Where the whole image differs from its background: uint8 (H, W) {0, 255} (max RGB |difference|)."""
    diff = np.abs(whole.astype(np.int16) - background.astype(np.int16)).max(axis=2)
    return (diff > diff_threshold).astype(np.uint8) * 255


def part_mask(
    part: np.ndarray,
    whole: np.ndarray | None = None,
    background: np.ndarray | None = None,
    *,
    black_threshold: int = 24,
    diff_threshold: int = 24,
    open_px: int = 3,
    close_px: int = 5,
) -> np.ndarray:
    """The defect mask of one generated pair: uint8 (H, W) {0, 255}, 255 = defect.

    Args:
        part: the part-branch image, uint8 (H, W, 3) (defect on black).
        whole, background: the whole-branch image and its BCM background, uint8 (H, W, 3); when both
            are given only part components overlapping the change map are kept.
        black_threshold, diff_threshold, open_px, close_px: see :func:`part_foreground` and
            :func:`change_map`.
    """
    mask = part_foreground(part, black_threshold, open_px, close_px)
    if whole is None or background is None or not mask.any():
        return mask
    changed = change_map(whole, background, diff_threshold) > 0
    count, labels, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    overlaps = np.bincount(labels[changed], minlength=count)
    keep = overlaps > 0
    keep[0] = False
    if not keep.any():
        keep[1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))] = True
    return np.where(keep[labels], 255, 0).astype(np.uint8)


def mask_agreement(mask: np.ndarray, whole: np.ndarray, background: np.ndarray, diff_threshold: int = 24) -> float:
    """IoU between the mask and where the whole image differs from its background (1.0 when both empty).

    The filters' mask/image agreement: how well the mask lines up with the change in the whole image.
    """
    a = mask > 0
    b = change_map(whole, background, diff_threshold) > 0
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def fuse_attention(mask: np.ndarray, attention: np.ndarray, weight: float) -> np.ndarray:
    """Blend the mask with a [0, 1] attention map: pixel kept where (1 - w) * mask + w * attention >= 0.5.

    Args:
        mask: uint8 (H, W) {0, 255}; attention: float (H, W) in [0, 1] (the "sks" cross-attention map);
        weight: w in [0, 1]; 0 returns ``mask`` unchanged, 1 thresholds the attention map alone at 0.5.
    """
    if weight <= 0:
        return mask
    score = (1 - weight) * (mask > 0) + weight * attention
    return np.where(score >= 0.5, 255, 0).astype(np.uint8)
