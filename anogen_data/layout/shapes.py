"""Mask shapes for synthetic defects: real learn-shot masks under geometric augmentation, Perlin blobs,
random strokes and ellipses.

Real shapes follow the real size/shape distribution (as AnomalyDiffusion and DualAnoDiff do with their
mask generators): the learn-shot mask crop is rescaled to the target image, then flipped, rotated,
scaled and smoothly deformed (thin-plate spline) with albumentations (Buslaev et al., Information 2020). The same
``real_shape`` call with the same seed warps the learn-shot *image* crop identically, which is how the
``paste`` backend transplants the real defect exactly under the layout's mask. For polar placement
(``propose``'s default on objects) ``polar_shape`` instead turns the crop rigidly with the same angle
that moves the defect about the object centre, so rim defects stay tangent to the rim. Perlin blobs follow
DRAEM (Zavrtanik et al., ICCV 2021); strokes/ellipses cover thin and round defects when a category has
no real anomalies.

Masks are uint8 (h, w) crops with values {0, 255}, 255 = defect.
"""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no PyPI request on import (offline, fork-safe)

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from anogen_data.layout.noise import fractal_noise  # noqa: E402
from anogen_data.layout.rle import mask_bbox  # noqa: E402

SHAPE_KINDS = ("perlin", "stroke")
MAX_FRACTION = 0.9  # a warped shape never covers more than this fraction of the target side


def crop_defect(mask: np.ndarray, image: np.ndarray | None = None, margin: float = 0.1) -> tuple[np.ndarray, np.ndarray | None]:
    """Crop a full-image mask (and image) to the defect's box plus ``margin`` of its size on each side."""
    box = mask_bbox(mask)
    if box is None:
        raise ValueError("empty mask")
    x0, y0, x1, y1 = box
    pad_x, pad_y = max(2, round(margin * (x1 - x0))), max(2, round(margin * (y1 - y0)))
    h, w = mask.shape
    x0, y0, x1, y1 = max(0, x0 - pad_x), max(0, y0 - pad_y), min(w, x1 + pad_x), min(h, y1 + pad_y)
    return mask[y0:y1, x0:x1], (None if image is None else image[y0:y1, x0:x1])


def _trim(mask: np.ndarray, image: np.ndarray | None, pad: int) -> tuple[np.ndarray, np.ndarray | None]:
    box = mask_bbox(mask)
    if box is None:
        return mask, image
    x0, y0, x1, y1 = box
    h, w = mask.shape
    x0, y0, x1, y1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
    return mask[y0:y1, x0:x1], (None if image is None else image[y0:y1, x0:x1])


def real_shape(
    mask_crop: np.ndarray,
    seed: int,
    *,
    size_ratio: float,
    target_hw: tuple[int, int],
    image_crop: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Warp a real defect crop: resize by ``size_ratio`` x a jitter, then flip/affine/thin-plate warp.

    Everything random (the size jitter in [0.75, 1.25] and the albumentations Compose seed) comes from
    ``seed``, so ``propose`` (mask only) and ``paste`` (mask and image) get the same warp.

    Args:
        mask_crop: uint8 (h, w) {0, 255}, from ``crop_defect``.
        seed: the layout's seed.
        size_ratio: target image side / learn-shot image side, so defects keep their relative size.
        target_hw: the target image size; the result is shrunk to fit within MAX_FRACTION of it.
        image_crop: optional uint8 (h, w, 3) crop warped with exactly the same transform.

    Returns:
        (mask, image): the warped mask (uint8 {0, 255}, trimmed to the defect plus a small pad) and the
        warped image crop of the same size (None when no image was given).
    """
    rng = np.random.default_rng([int(seed), 7])
    scale = size_ratio * float(rng.uniform(0.75, 1.25))
    h, w = mask_crop.shape
    limit = MAX_FRACTION * min(target_hw) / (1.3 * max(h, w))  # 1.3: the affine may still grow it
    scale = max(min(scale, limit), 4.0 / max(1, min(h, w)))
    size = (max(2, round(w * scale)), max(2, round(h * scale)))
    mask = cv2.resize(mask_crop, size, interpolation=cv2.INTER_NEAREST)
    image = None if image_crop is None else cv2.resize(image_crop, size, interpolation=cv2.INTER_LINEAR)
    side = max(size)
    transform = A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.Affine(scale=(0.85, 1.15), rotate=(-30, 30), fit_output=True, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0, p=1.0),
            # a smooth thin-plate warp (displacement ~1-3 % of the side); ElasticTransform(approximate=True)
            # blurs its field with a fixed 17 px kernel whatever sigma is, which scrambled photo crops into a mosaic
            A.ThinPlateSpline(scale_range=(0.03, 0.08), num_control_points=4, p=0.5),
        ],
        seed=int(rng.integers(2**31)),
    )
    dummy = np.zeros((size[1], size[0], 3), np.uint8) if image is None else image
    out = transform(image=dummy, mask=mask)
    warped_mask = np.where(out["mask"] > 127, 255, 0).astype(np.uint8)
    if not warped_mask.any():  # the warp can, rarely, erase a thin defect: fall back to the resized crop
        warped_mask, out["image"] = mask, dummy
    warped_mask, warped_image = _trim(warped_mask, out["image"], pad=max(2, round(0.05 * side)))
    return warped_mask, (None if image_crop is None else warped_image)


def polar_shape(
    mask_crop: np.ndarray,
    seed: int,
    *,
    size_ratio: float,
    target_hw: tuple[int, int],
    image_crop: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Warp a real defect crop for polar placement: a rigid turn (and, half the time, a mirror) that
    ``propose`` applies to the defect's position about the object centre too, so a rim arc moved to a new
    angle stays on the rim and tangent to it, and a size jitter of +-10 %.

    No thin-plate warp and no shrinking to a fraction of the image, unlike ``real_shape``: the defect
    keeps the shape and size it had at that radius, so a rim arc keeps the rim's curvature. Everything
    random comes from ``seed`` (the turn angle in [0, 2 pi), the mirror, the size jitter), so
    ``propose`` (mask only) and ``paste`` (mask and image) agree.

    Args:
        mask_crop: uint8 (h, w) {0, 255}, from ``crop_defect``.
        seed: the layout's seed.
        size_ratio: target image side / learn-shot image side.
        target_hw: the target image size; the crop is never scaled above it.
        image_crop: optional uint8 (h, w, 3) crop warped with exactly the same transform.

    Returns:
        (mask, image, turn): the warped mask (uint8 {0, 255}, trimmed to the defect + 2 px), the warped
        image crop of the same size (None when no image was given) and ``turn``, the 2x2 float64
        rotation(-reflection) matrix in image (x, y) coordinates that maps the shot's (defect - object
        centre) vector to the new one.
    """
    rng = np.random.default_rng([int(seed), 11])
    angle, mirror = float(rng.uniform(0.0, 2.0 * np.pi)), bool(rng.random() < 0.5)
    h, w = mask_crop.shape
    scale = size_ratio * float(rng.uniform(0.9, 1.1))
    scale = max(min(scale, min(target_hw) / max(h, w)), 4.0 / max(1, min(h, w)))
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    if mirror:  # reflect y first: with the turn, a mirror image about some line through the object centre
        turn = turn @ np.diag([1.0, -1.0])
    linear = scale * turn
    corners = linear @ np.array([[0, w, 0, w], [0, 0, h, h]], np.float64)
    low, high = corners.min(axis=1), corners.max(axis=1)
    size = (max(2, int(np.ceil(high[0] - low[0]))), max(2, int(np.ceil(high[1] - low[1]))))
    matrix = np.hstack([linear, -low[:, None]])
    mask = cv2.warpAffine(mask_crop, matrix, size, flags=cv2.INTER_LINEAR, borderValue=0)
    mask = np.where(mask > 127, 255, 0).astype(np.uint8)
    if not mask.any():  # a sub-pixel defect lost to the interpolation: one pixel at the centre
        mask[size[1] // 2, size[0] // 2] = 255
    image = None if image_crop is None else cv2.warpAffine(image_crop, matrix, size, flags=cv2.INTER_LINEAR, borderValue=0)
    mask, image = _trim(mask, image, pad=2)
    return mask, image, turn


def mask_centroid(mask: np.ndarray) -> np.ndarray:
    """The (x, y) centroid of a non-empty uint8 mask's 255 pixels, float64 (2,)."""
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()], np.float64)


def perlin_blob(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A DRAEM-style Perlin-thresholded blob filling roughly a (height, width) box; uint8 {0, 255}."""
    cells = int(rng.integers(1, 4))
    noise = fractal_noise(height, width, (cells, cells), rng, octaves=3)
    yy, xx = np.mgrid[0:height, 0:width]
    window = 1.0 - ((2 * yy / max(1, height - 1) - 1) ** 2 + (2 * xx / max(1, width - 1) - 1) ** 2)
    field = noise + 0.6 * window.astype(np.float32)
    threshold = float(rng.uniform(0.25, 0.45))
    blob = (field > threshold).astype(np.uint8) * 255
    if not blob.any():
        blob = (field >= field.max() - 1e-6).astype(np.uint8) * 255
    return blob


def stroke_shape(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Random polyline strokes (scratches, cracks) or a filled ellipse (spots) in a (height, width) box."""
    mask = np.zeros((height, width), np.uint8)
    if rng.random() < 0.5:
        center = (width // 2, height // 2)
        axes = (max(1, int(width * rng.uniform(0.25, 0.5))), max(1, int(height * rng.uniform(0.25, 0.5))))
        cv2.ellipse(mask, center, axes, float(rng.uniform(0, 180)), 0, 360, 255, thickness=-1)
        return mask
    thickness = max(1, int(round(min(height, width) * rng.uniform(0.03, 0.12))))
    for _ in range(int(rng.integers(1, 4))):
        points = [rng.uniform((0, 0), (width, height))]
        for _ in range(int(rng.integers(2, 6))):
            points.append(np.clip(points[-1] + rng.normal(0, 0.3, 2) * (width, height), 0, (width - 1, height - 1)))
        cv2.polylines(mask, [np.round(points).astype(np.int32)], False, 255, thickness=thickness)
    return mask


def synthetic_shape(kind: str, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A "perlin" or "stroke" shape of size (height, width); uint8 {0, 255}, never empty."""
    shape = perlin_blob(height, width, rng) if kind == "perlin" else stroke_shape(height, width, rng)
    if not shape.any():
        shape[height // 2, width // 2] = 255
    return shape
