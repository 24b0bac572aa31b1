"""Few-shot real-defect transplant: the CPU backend driven by real anomalies, as the papers are.

Like AnoGen (Gui et al., ECCV 2024) and DualAnoDiff (Jin et al., CVPR 2025) it sees only the few
"learn" shots of a defect type. It cuts the real defect (image + mask) from the learn shot named by the
layout (``shape_source == "real"``, its ``shot_mask`` and ``placement``), warps it with the *same*
transform that ``propose`` used to make the layout's mask (``layout.shapes.real_shape``, or
``polar_shape`` for polar placement, which turns the defect with its new angle about the object centre
so rim defects stay tangent to the rim; both seeded by the layout's seed), jitters
brightness/contrast/hue, and blends it into the layout's box with Poisson editing (Perez et al.,
SIGGRAPH 2003; ``cv2.seamlessClone``: "normal" for blob-like defects, "mixed" for thin ones, which keeps
the stronger of source and target gradients; polar layouts always "normal": they sit at the radius of
their learn shot, among the same surroundings, so the whole defect is transplanted and a broken rim
does not keep the intact rim's edges showing through) and a feathered alpha at the border. The blend region is
the defect mask dilated by at most MAX_FEATHER_PX (+ the clone's own erosion), never the crop's box, so
the learn shot's surroundings (background, other rim parts) do not come along with the defect. When the Poisson
solution shifts the defect's mean colour by more than MAX_DRIFT (its boundary crossed a strong edge,
e.g. the bright background beside a bottle), the warped defect is pasted with the feathered alpha only.

Output mask: the layout's mask (the warped real mask clipped to the foreground), uint8 (H, W), 255 =
defect; with ``options.refine = true`` it is further restricted to pixels that visibly changed. Pixels
farther than the feather from the mask are never changed.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from anogen_data.data.image_io import read_image, read_mask
from anogen_data.errors import AnogenError
from anogen_data.layout.shapes import crop_defect, polar_shape, real_shape
from anogen_data.records import IndexEntry, Layout
from anogen_data.synthesis.base import Backend, layout_mask
from anogen_data.synthesis.colour import apply_jitter, draw_jitter

THIN = 0.35  # mask area / (perimeter * short side) below this counts as thin -> mixed clone
PAD = 8  # px of reflection padding so that seamlessClone never meets the image border
MAX_DRIFT = 40.0  # grey levels: above this mean colour shift the Poisson result is dropped for a plain paste
CLONE_ERODE = 3  # seamlessClone erodes its mask by 3 px internally; we dilate by as much first
MAX_FEATHER_PX = 3.0  # the blend ring around the mask stays a few px: the shot's surroundings never come along


@lru_cache(maxsize=32)
def _shot_crop(image_path: str, mask_path: str) -> tuple[np.ndarray, np.ndarray]:
    """(mask crop, image crop) of a learn shot, exactly as ``propose`` crops it."""
    mask_crop, image_crop = crop_defect(read_mask(mask_path), read_image(image_path))
    return mask_crop, image_crop


def clone_mode(mask: np.ndarray) -> str:
    """"mixed" for thin defects (scratches, cracks), "normal" for blobs, from the mask's thinness."""
    area = float(np.count_nonzero(mask))
    contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours) or 1.0
    return "mixed" if area / perimeter < THIN * math.sqrt(area) / 2 else "normal"


class PasteBackend(Backend):
    """Real-defect transplant; options: ``jitter`` (0.1), ``feather`` (0.08 of the box side, at most
    MAX_FEATHER_PX),
    ``blend`` ({defect: "normal"|"mixed"} overrides), ``refine`` (false)."""

    name = "paste"

    def __init__(self, context) -> None:
        super().__init__(context)
        self.shots = {s.mask_path: s for s in context.learn_shots if s.mask_path}
        if not self.shots:
            raise AnogenError(
                "backend 'paste' needs real anomalies (role 'learn') in the index and this category has none; "
                "use --backend perlin (or cutpaste)"
            )

    def _shot(self, layout: Layout) -> tuple[IndexEntry, str]:
        """(the learn shot the layout's shape came from, its placement "free" | "polar")."""
        if layout.shape_source != "real" or not layout.shot_mask:
            raise AnogenError(
                f"layout {layout.id} has a '{layout.shape_source}' shape; paste needs real shapes "
                "(propose with --shape real or auto), or use --backend perlin"
            )
        placement, mask_path = layout.placement or "free", layout.shot_mask
        if mask_path not in self.shots:
            raise AnogenError(f"layout {layout.id}: {mask_path} is not a learn shot of this index; re-run propose")
        return self.shots[mask_path], placement

    def make_recipe(self, image: np.ndarray, layout: Layout, rng: np.random.Generator) -> dict:
        shot, placement = self._shot(layout)
        x0, y0, x1, y1 = layout.bbox_xyxy
        mode = self.context.options.get("blend", {}).get(layout.defect_type)
        if mode is None:
            mode = "normal" if placement == "polar" else clone_mode(layout_mask(layout)[y0:y1, x0:x1])
        feather = float(self.context.options.get("feather", 0.08))
        return {
            "shot": shot.path,
            "mode": mode,
            "jitter": draw_jitter(rng, float(self.context.options.get("jitter", 0.1))),
            "feather_px": round(min(MAX_FEATHER_PX, max(1.0, feather * min(x1 - x0, y1 - y0))), 2),
            "refine": bool(self.context.options.get("refine", False)),
        }

    def _defect(self, image: np.ndarray, layout: Layout, recipe: dict) -> np.ndarray:
        """The warped, jittered real defect crop at the layout box size, uint8 (bh, bw, 3)."""
        shot, placement = self._shot(layout)
        mask_crop, image_crop = _shot_crop(recipe["shot"], shot.mask_path)
        H, W = image.shape[:2]
        ratio = math.sqrt(H * W / (shot.height * shot.width))
        if placement == "polar":
            _, warped, _ = polar_shape(mask_crop, layout.seed, size_ratio=ratio, target_hw=(H, W), image_crop=image_crop)
        else:
            _, warped = real_shape(mask_crop, layout.seed, size_ratio=ratio, target_hw=(H, W), image_crop=image_crop)
        x0, y0, x1, y1 = layout.bbox_xyxy
        warped = warped[: y1 - y0, : x1 - x0]
        if warped.shape[:2] != (y1 - y0, x1 - x0):  # layouts from elsewhere: fit the crop to the box
            warped = cv2.resize(warped, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        return apply_jitter(warped, recipe["jitter"])

    def apply(self, image: np.ndarray, layout: Layout, recipe: dict) -> tuple[np.ndarray, np.ndarray]:
        x0, y0, x1, y1 = layout.bbox_xyxy
        mask = layout_mask(layout)
        grow = max(1, int(round(recipe["feather_px"]))) + CLONE_ERODE
        # work in a region of interest: the box plus the dilation and the blur's 4-sigma reach
        H, W = mask.shape
        margin = grow + int(math.ceil(2 * recipe["feather_px"])) + 2
        rx0, ry0, rx1, ry1 = max(0, x0 - margin), max(0, y0 - margin), min(W, x1 + margin), min(H, y1 + margin)
        target, roi_mask = image[ry0:ry1, rx0:rx1], mask[ry0:ry1, rx0:rx1]
        source = target.copy()
        source[y0 - ry0 : y1 - ry0, x0 - rx0 : x1 - rx0] = self._defect(image, layout, recipe)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        clone_mask = cv2.dilate(roi_mask, kernel)
        cloned = _seamless(source, target, clone_mask, recipe["mode"])
        inside = roi_mask > 0
        drift = np.abs(cloned[inside].astype(np.float32).mean(0) - source[inside].astype(np.float32).mean(0)).max()
        if drift > MAX_DRIFT:  # the Poisson membrane pulled in a strong edge (e.g. a bright background)
            cloned = source
        alpha = cv2.GaussianBlur((clone_mask > 0).astype(np.float32), (0, 0), recipe["feather_px"] / 2.0)
        alpha = np.maximum(alpha, (roi_mask > 0).astype(np.float32))[..., None]
        out = image.copy()
        out[ry0:ry1, rx0:rx1] = np.rint(alpha * cloned + (1 - alpha) * target).astype(np.uint8)
        if recipe["refine"]:
            changed = np.abs(out.astype(np.int16) - image).max(axis=2) > 8
            if (changed & (mask > 0)).any():
                mask = np.where(changed, mask, 0).astype(np.uint8)
        return out, mask


def _seamless(source: np.ndarray, target: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Poisson-blend ``source`` into ``target`` where ``mask`` > 0 (same size, no offset)."""
    pad = lambda a: cv2.copyMakeBorder(a, PAD, PAD, PAD, PAD, cv2.BORDER_REFLECT_101)  # noqa: E731
    src, dst = pad(source), pad(target)
    m = cv2.copyMakeBorder(mask, PAD, PAD, PAD, PAD, cv2.BORDER_CONSTANT, value=0)
    x, y, w, h = cv2.boundingRect(m)
    flag = cv2.MIXED_CLONE if mode == "mixed" else cv2.NORMAL_CLONE
    src_bgr, dst_bgr = cv2.cvtColor(src, cv2.COLOR_RGB2BGR), cv2.cvtColor(dst, cv2.COLOR_RGB2BGR)
    blended = cv2.seamlessClone(src_bgr, dst_bgr, m, (x + w // 2, y + h // 2), flag)
    return cv2.cvtColor(blended, cv2.COLOR_BGR2RGB)[PAD:-PAD, PAD:-PAD]
