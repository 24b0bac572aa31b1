"""CutPaste backend (Li et al., CVPR 2021): a patch cut from the same image, colour-jittered and pasted.

Two variants, drawn per sample: "normal" (a box-sized rectangle from elsewhere in the image, pasted
into the layout's mask) and "scar" (a thin rotated strip, pasted along a random direction through the
layout's box and clipped to its mask). Pixels outside the output mask are never changed; the output
mask is exactly where pixels were replaced (uint8 (H, W), 255 = defect).
"""

from __future__ import annotations

import cv2
import numpy as np

from anogen_data.records import Layout
from anogen_data.synthesis.base import Backend, layout_mask
from anogen_data.synthesis.colour import apply_jitter, draw_jitter


class CutPasteBackend(Backend):
    """CutPaste normal/scar; options: ``scar_prob`` (default 0.5), ``jitter`` (default 0.1)."""

    name = "cutpaste"

    def make_recipe(self, image: np.ndarray, layout: Layout, rng: np.random.Generator) -> dict:
        H, W = image.shape[:2]
        x0, y0, x1, y1 = layout.bbox_xyxy
        bw, bh = x1 - x0, y1 - y0
        variant = "scar" if rng.random() < float(self.context.options.get("scar_prob", 0.5)) else "normal"
        if variant == "scar":
            length = max(4, int(max(bw, bh) * rng.uniform(0.6, 1.0)))
            width = max(2, int(min(bw, bh) * rng.uniform(0.08, 0.25)))
            ph, pw = min(width, H), min(length, W)
        else:
            ph, pw = bh, bw
        return {
            "variant": variant,
            "src_xy": [int(rng.integers(0, W - pw + 1)), int(rng.integers(0, H - ph + 1))],
            "patch_hw": [int(ph), int(pw)],
            "angle": float(rng.uniform(-90, 90)),
            "jitter": draw_jitter(rng, float(self.context.options.get("jitter", 0.1))),
        }

    def apply(self, image: np.ndarray, layout: Layout, recipe: dict) -> tuple[np.ndarray, np.ndarray]:
        x0, y0, x1, y1 = layout.bbox_xyxy
        sx, sy = recipe["src_xy"]
        ph, pw = recipe["patch_hw"]
        patch = apply_jitter(image[sy : sy + ph, sx : sx + pw], recipe["jitter"])
        target = layout_mask(layout)[y0:y1, x0:x1] > 0
        if recipe["variant"] == "scar":
            patch, strip = _rotated_strip(patch, recipe["angle"], (y1 - y0, x1 - x0))
            if (strip & target).any():
                target = strip & target
            else:
                patch = cv2.resize(patch, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        out = image.copy()
        region = out[y0:y1, x0:x1]
        region[target] = patch[target]
        mask = np.zeros(image.shape[:2], np.uint8)
        mask[y0:y1, x0:x1][target] = 255
        return out, mask


def _rotated_strip(patch: np.ndarray, angle: float, box_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Rotate a (h, w, 3) strip by ``angle`` degrees about the centre of a ``box_hw`` canvas.

    Returns the rotated patch (box_h, box_w, 3) and its boolean footprint (box_h, box_w).
    """
    bh, bw = box_hw
    ph, pw = patch.shape[:2]
    matrix = cv2.getRotationMatrix2D((pw / 2.0, ph / 2.0), angle, 1.0)
    matrix[:, 2] += (bw / 2.0 - pw / 2.0, bh / 2.0 - ph / 2.0)
    rotated = cv2.warpAffine(patch, matrix, (bw, bh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    ones = np.full((ph, pw), 255, np.uint8)
    footprint = cv2.warpAffine(ones, matrix, (bw, bh), flags=cv2.INTER_NEAREST, borderValue=0) > 0
    return rotated, footprint
