"""DRAEM-style backend (Zavrtanik et al., ICCV 2021): a Perlin-thresholded mask filled with an anomaly
texture, blended with a random opacity.

DRAEM fills its Perlin masks with DTD textures (Cimpoi et al., CVPR 2014), which we do not ship. We use
(a) other good images of the same set under strong colour/geometric augmentation (crop, rotation,
flip, jitter, channel shuffle, posterize, invert), or (b) a procedural fractal-noise colour texture
when no good images are given (``options.texture = "procedural"`` forces it). The mask is the layout's
mask: ``propose`` makes Perlin blobs for categories without real anomalies (and real shapes otherwise).

Blend (DRAEM eq. 1): ``out = (1 - M) * I + (1 - beta) * (M * T) + beta * (M * I)`` with beta drawn in
[0, ``max_beta``]. Output mask: uint8 (H, W), 255 = defect = M.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from anogen_data.data.image_io import read_image
from anogen_data.layout.noise import fractal_noise
from anogen_data.records import Layout
from anogen_data.synthesis.base import Backend, layout_mask
from anogen_data.synthesis.colour import apply_strong, draw_strong


@lru_cache(maxsize=8)
def _texture_source(path: str) -> np.ndarray:
    image = read_image(path)
    image.flags.writeable = False
    return image


def procedural_texture(height: int, width: int, seed: int) -> np.ndarray:
    """A colourful fractal-noise texture, uint8 (height, width, 3), fully determined by ``seed``."""
    rng = np.random.default_rng(seed)
    channels = []
    for _ in range(3):
        noise = fractal_noise(height, width, (int(rng.integers(2, 8)),) * 2, rng, octaves=4)
        channels.append((noise - noise.min()) / max(1e-6, float(np.ptp(noise))))
    return (np.stack(channels, axis=-1) * 255).astype(np.uint8)


class PerlinBackend(Backend):
    """DRAEM Perlin backend; options: ``texture`` ("set" | "procedural"), ``max_beta`` (default 0.8)."""

    name = "perlin"

    def make_recipe(self, image: np.ndarray, layout: Layout, rng: np.random.Generator) -> dict:
        goods = self.context.good_paths
        use_set = bool(goods) and self.context.options.get("texture", "set") == "set"
        others = [p for p in goods if p != layout.source_path] or list(goods)
        return {
            "texture": others[int(rng.integers(len(others)))] if use_set else "procedural",
            "texture_seed": int(rng.integers(2**31)),
            "crop_xy": [float(rng.random()), float(rng.random())],
            "crop_scale": float(rng.uniform(0.3, 1.0)),
            "rot90": int(rng.integers(4)),
            "flip": bool(rng.random() < 0.5),
            "strong": draw_strong(rng),
            "beta": float(rng.uniform(0.0, float(self.context.options.get("max_beta", 0.8)))),
        }

    def _texture(self, recipe: dict, height: int, width: int) -> np.ndarray:
        if recipe["texture"] == "procedural":
            texture = procedural_texture(height, width, recipe["texture_seed"])
        else:
            source = _texture_source(recipe["texture"])
            sh, sw = source.shape[:2]
            ch, cw = max(2, int(sh * recipe["crop_scale"])), max(2, int(sw * recipe["crop_scale"]))
            cy, cx = int(recipe["crop_xy"][1] * (sh - ch)), int(recipe["crop_xy"][0] * (sw - cw))
            texture = cv2.resize(source[cy : cy + ch, cx : cx + cw], (width, height), interpolation=cv2.INTER_AREA)
        texture = np.rot90(texture, recipe["rot90"])
        texture = texture[:, ::-1] if recipe["flip"] else texture
        texture = cv2.resize(np.ascontiguousarray(texture), (width, height), interpolation=cv2.INTER_LINEAR)
        return apply_strong(texture, recipe["strong"])

    def apply(self, image: np.ndarray, layout: Layout, recipe: dict) -> tuple[np.ndarray, np.ndarray]:
        x0, y0, x1, y1 = layout.bbox_xyxy
        mask = layout_mask(layout)
        m = (mask[y0:y1, x0:x1] > 0)[..., None].astype(np.float32)
        texture = self._texture(recipe, y1 - y0, x1 - x0).astype(np.float32)
        region = image[y0:y1, x0:x1].astype(np.float32)
        beta = recipe["beta"]
        blended = (1 - m) * region + (1 - beta) * (m * texture) + beta * (m * region)
        out = image.copy()
        out[y0:y1, x0:x1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        return out, mask
