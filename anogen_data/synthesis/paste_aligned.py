"""Grid-aligned real-defect transplant for periodic textures (MVTec grid, meshes, woven fabric).

Why (issue 15; the contact sheet in benchmarks/RESULTS.md, "Grid"): the learn shot's defect cannot be
cut out of a grid without the wires around and under it. ``paste`` warps the shot at random (flip,
+-30 deg turn, scale jitter, thin-plate warp), so the wires that come along have the wrong angle, pitch
and phase for the target's grid. What the pasted pixels then show is a patch where the grid breaks, not
the defect. Real grid defects keep the grid continuous around them.

How: in ``make_recipe`` (everything random or searched is drawn first and stored in the recipe) the
shot's surroundings (the defect's box + ``CONTEXT`` x its side, the defect itself masked out) are
matched against the target around the layout box's centre over ``ANGLES`` x ``SCALES`` (relative to the
shots' image-size ratio) with masked normalised cross-correlation (``cv2.matchTemplate``) at
1/``DOWN`` resolution, then refined at full resolution. ``apply`` warps the *unflipped* shot crop with
the best pose (a rotation and scale only), colour-jitters it as ``paste`` does, and alpha-blends it
(feathered mask, no Poisson editing) at the matched position.

Differs from the released papers, which generate the defect with diffusion (AnoGen, Gui et al., ECCV
2024; DualAnoDiff, Jin et al., CVPR 2025) and so never face this. Like ``paste`` it sees only the learn
shots. Output mask: the shot's mask under the same pose, at the matched position, uint8 (H, W),
255 = defect. The layout gives only the search centre, so the output mask is not the layout's mask.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from anogen_data.data.image_io import read_image, read_mask
from anogen_data.records import Layout
from anogen_data.synthesis.colour import apply_jitter
from anogen_data.synthesis.paste import PasteBackend

ANGLES = tuple(range(-30, 31, 3))  # deg: MVTec grid photos differ by up to ~30 deg in wire angle
SCALES = tuple(np.round(np.arange(0.70, 1.401, 0.05), 2))  # wire pitch differs by up to ~1.4x
CONTEXT = 0.5  # context ring around the defect's box, as a share of its long side (+ MIN_CONTEXT px)
MIN_CONTEXT = 48  # px at full resolution: at least about one grid cell of context
DOWN = 4  # coarse search at 1/4 resolution, then a +-REFINE px full-resolution refinement
REFINE = 2 * DOWN
GUARD = 9  # px: the defect mask is dilated by this much before it is excluded from the match


@lru_cache(maxsize=16)
def _shot(image_path: str, mask_path: str) -> tuple[np.ndarray, np.ndarray]:
    """(context crop uint8 (h, w, 3), its defect mask uint8 (h, w) {0, 255}) of a learn shot."""
    image, mask = read_image(image_path), read_mask(mask_path)
    ys, xs = np.nonzero(mask)
    pad = int(CONTEXT * max(np.ptp(ys), np.ptp(xs)) + MIN_CONTEXT)
    y0, y1 = max(0, ys.min() - pad), min(mask.shape[0], ys.max() + 1 + pad)
    x0, x1 = max(0, xs.min() - pad), min(mask.shape[1], xs.max() + 1 + pad)
    return image[y0:y1, x0:x1], mask[y0:y1, x0:x1]


def pose_matrix(hw: tuple[int, int], angle: float, scale: float) -> tuple[np.ndarray, tuple[int, int]]:
    """The 2x3 affine turning an (h, w) crop by ``angle`` deg and scaling it by ``scale`` about its centre,
    shifted so the whole result fits its (out_h, out_w); returns (matrix, (out_h, out_w))."""
    h, w = hw
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    out_w, out_h = max(2, int(np.ceil(h * sin + w * cos))), max(2, int(np.ceil(h * cos + w * sin)))
    m[0, 2] += out_w / 2 - w / 2
    m[1, 2] += out_h / 2 - h / 2
    return m, (out_h, out_w)


def _templates(grey: np.ndarray, mask: np.ndarray, angle: float, scale: float):
    """(template, weight) of the shot's grey context crop under a pose; weight 0 on and near the defect."""
    m, (h, w) = pose_matrix(grey.shape, angle, scale)
    template = cv2.warpAffine(grey, m, (w, h), flags=cv2.INTER_LINEAR)
    valid = cv2.warpAffine(np.full_like(grey, 255), m, (w, h), flags=cv2.INTER_NEAREST)
    defect = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_NEAREST)
    guard = cv2.dilate(defect, np.ones((2 * GUARD + 1, 2 * GUARD + 1), np.uint8))
    return template, ((valid > 0) & (guard == 0)).astype(np.float32)


def _best(roi: np.ndarray, template: np.ndarray, weight: np.ndarray) -> tuple[float, tuple[int, int]]:
    """(score, (x, y)) of the best masked normalised cross-correlation of ``template`` in ``roi``."""
    if template.shape[0] > roi.shape[0] or template.shape[1] > roi.shape[1] or weight.sum() < 16:
        return -1.0, (0, 0)
    result = np.nan_to_num(cv2.matchTemplate(roi, template, cv2.TM_CCORR_NORMED, mask=weight), nan=-1.0,
                           posinf=-1.0, neginf=-1.0)
    _, score, _, loc = cv2.minMaxLoc(result)
    return float(score), loc


def match_pose(shot_image: np.ndarray, shot_mask: np.ndarray, target: np.ndarray, centre: tuple[int, int],
               size_ratio: float = 1.0) -> dict:
    """Where and how the shot's context best continues the target's texture near ``centre``.

    Args:
        shot_image: uint8 (h, w, 3) context crop of the learn shot; shot_mask: uint8 (h, w) {0, 255}.
        target: uint8 (H, W, 3) good image; centre: (x, y) the search is centred on (the layout box's).
        size_ratio: target image side / shot image side; the scales searched are relative to it.

    Returns:
        {"angle": deg, "scale": float, "x": int, "y": int, "score": float}: the warped crop's top-left
        corner (x, y) in the target and the normalised cross-correlation of its context there (1 = equal).
    """
    grey = cv2.cvtColor(shot_image, cv2.COLOR_RGB2GRAY)
    target_grey = cv2.cvtColor(target, cv2.COLOR_RGB2GRAY)
    small = lambda a, nearest=False: cv2.resize(  # noqa: E731
        a, (max(2, a.shape[1] // DOWN), max(2, a.shape[0] // DOWN)),
        interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)
    grey_s, mask_s, target_s = small(grey), small(shot_mask, True), small(target_grey)
    side = int(max(grey.shape) * size_ratio * max(SCALES) * 1.5)  # the turned, scaled crop fits in this
    cx, cy = centre
    H, W = target_grey.shape
    x0, y0 = int(np.clip(cx - side, 0, W)), int(np.clip(cy - side, 0, H))
    x1, y1 = int(np.clip(cx + side, 0, W)), int(np.clip(cy + side, 0, H))
    roi = target_s[y0 // DOWN : y1 // DOWN, x0 // DOWN : x1 // DOWN]
    best = (-2.0, 0.0, 1.0, (0, 0))
    for angle in ANGLES:
        for scale in SCALES:
            score, loc = _best(roi, *_templates(grey_s, mask_s, angle, float(scale) * size_ratio))
            if score > best[0]:
                best = (score, float(angle), float(scale) * size_ratio, loc)
    _, angle, scale, (lx, ly) = best
    template, weight = _templates(grey, shot_mask, angle, scale)
    gx, gy = x0 + lx * DOWN, y0 + ly * DOWN  # coarse corner at full resolution, refined within +-REFINE
    rx0, ry0 = max(0, gx - REFINE), max(0, gy - REFINE)
    rx1, ry1 = min(W, gx + template.shape[1] + REFINE), min(H, gy + template.shape[0] + REFINE)
    score, (fx, fy) = _best(target_grey[ry0:ry1, rx0:rx1], template, weight)
    if score < 0:  # the full-size template did not fit the refinement window (image border)
        fx, fy = min(gx, W - template.shape[1]) - rx0, min(gy, H - template.shape[0]) - ry0
    return {"angle": angle, "scale": round(scale, 4), "x": int(rx0 + fx), "y": int(ry0 + fy), "score": round(score, 4)}


class AlignedPasteBackend(PasteBackend):
    """``paste-aligned``: the learn shot's defect pasted where, and turned and scaled so that, its
    surroundings continue the target's texture. Options as ``paste`` (``jitter``, ``feather``)."""

    name = "paste-aligned"

    def make_recipe(self, image: np.ndarray, layout: Layout, rng: np.random.Generator) -> dict:
        recipe = super().make_recipe(image, layout, rng)
        shot, _ = self._shot(layout)
        crop, mask = _shot(shot.path, shot.mask_path)
        ratio = float(np.sqrt(image.shape[0] * image.shape[1] / (shot.height * shot.width)))
        x0, y0, x1, y1 = layout.bbox_xyxy
        recipe["pose"] = match_pose(crop, mask, image, ((x0 + x1) // 2, (y0 + y1) // 2), ratio)
        return recipe

    def apply(self, image: np.ndarray, layout: Layout, recipe: dict) -> tuple[np.ndarray, np.ndarray]:
        shot, _ = self._shot(layout)
        crop, mask = _shot(shot.path, shot.mask_path)
        pose = recipe["pose"]
        m, (h, w) = pose_matrix(mask.shape, pose["angle"], pose["scale"])
        warped = apply_jitter(cv2.warpAffine(crop, m, (w, h), flags=cv2.INTER_LINEAR), recipe["jitter"])
        defect = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_NEAREST)
        H, W = image.shape[:2]
        x, y = pose["x"], pose["y"]
        h, w = min(h, H - y), min(w, W - x)  # clip at the image border
        out_mask = np.zeros((H, W), np.uint8)
        out_mask[y : y + h, x : x + w] = np.where(defect[:h, :w] > 127, 255, 0)
        alpha = cv2.GaussianBlur((defect[:h, :w] > 127).astype(np.float32), (0, 0), recipe["feather_px"] / 2.0)
        alpha = np.maximum(alpha, (defect[:h, :w] > 127).astype(np.float32))[..., None]
        out = image.copy()
        region = out[y : y + h, x : x + w].astype(np.float32)
        out[y : y + h, x : x + w] = np.rint(alpha * warped[:h, :w] + (1 - alpha) * region).astype(np.uint8)
        return out, out_mask
