"""Hard demo variants for foreground estimation and placement, with exact foreground ground truth.

The plain ``demo`` washer is bright on a mid-grey cloth: a colour distance to the border finds it. Real
lines are often harder (issue 17: a black tyre on a near-black background was called a texture, and the
synthetic defects landed beside it). These variants render such cases deterministically, so tests cover
them on a fresh machine:

- ``demo-dark``: a dark rubber ring with tread grooves on dark woven cloth (colour contrast ~5 Lab units),
- ``demo-light``: a light machined plate-nut on a light brushed plate,
- ``demo-texture``: a low-contrast woven texture that fills the frame (no object: foreground = everything).

As on a production line, the background of one variant is the same physical cloth / plate in every shot
(the same for every seed, plus per-shot sensor noise and a small brightness drift); the part moves and turns.
Defects (``scratch``, ``spot``, ``crack``, drawn by ``demo._defect_mask``) lie on the part (anywhere on
the texture). Masks are uint8 (H, W), 255 = defect; the foreground truth is uint8, 255 = part.

THIS IS A DEMO: never evidence of quality.
"""

from __future__ import annotations

import zlib

import cv2
import numpy as np

from anogen_data.data.demo import _defect_mask, _point_on_part, _rng

VARIANTS = ("demo-dark", "demo-light", "demo-texture")
_COLOURS = {
    "demo-dark": {"scratch": (120.0, 120.0, 125.0), "spot": (90.0, 70.0, 50.0), "crack": (8.0, 8.0, 8.0)},
    "demo-light": {"scratch": (255.0, 255.0, 255.0), "spot": (150.0, 120.0, 90.0), "crack": (110.0, 105.0, 100.0)},
    "demo-texture": {"scratch": (200.0, 200.0, 205.0), "spot": (70.0, 50.0, 35.0), "crack": (40.0, 38.0, 36.0)},
}


def _fixed(category: str) -> np.random.Generator:
    """The generator of what every shot of a variant shares (the cloth, the plate): the same for train and
    test shots and every seed, as one physical background is on a line."""
    return np.random.default_rng(np.random.SeedSequence([zlib.crc32(category.encode()), 0xBA5E]))


def _smooth(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    coarse = rng.normal(0.0, 1.0, (cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)


def _dark_cloth(size: int) -> np.ndarray:
    rng = _fixed("demo-dark")
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    weave = np.sin(xx * (2 * np.pi / 5.0)) * np.sin(yy * (2 * np.pi / 5.0))
    base = 34.0 + 1.5 * _smooth(rng, size, max(2, size // 32)) + 7.0 * weave + rng.normal(0, 3.0, (size, size))
    return np.clip(base, 0, 255).astype(np.float32)


def _light_plate(size: int) -> np.ndarray:
    rng = _fixed("demo-light")
    streaks = cv2.resize(rng.normal(0, 1.0, (size, max(2, size // 64))).astype(np.float32), (size, size),
                         interpolation=cv2.INTER_LINEAR)  # brushed: long horizontal streaks
    base = 212.0 + 4.0 * streaks + 2.0 * _smooth(rng, size, 3) + rng.normal(0, 2.5, (size, size))
    return np.clip(base, 0, 255).astype(np.float32)


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, 2)
    weave = np.sin(xx * (2 * np.pi / 7.0) + phase[0]) + np.sin(yy * (2 * np.pi / 7.0) + phase[1])
    base = 120.0 + 2.5 * weave + 3.0 * _smooth(rng, size, max(2, size // 24)) + rng.normal(0, 2.0, (size, size))
    return np.clip(base, 0, 255).astype(np.float32)


def _ring(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """A dark tyre-like ring: (grey float32 (H, W), mask bool, (cx, cy, radius))."""
    cx, cy = (size / 2 + rng.uniform(-0.05, 0.05, 2) * size).tolist()
    radius, turn = size * rng.uniform(0.33, 0.37), rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dist, angle = np.hypot(xx - cx, yy - cy), np.arctan2(yy - cy, xx - cx) + turn
    mask = (dist <= radius) & (dist >= 0.35 * radius)
    tread = np.where((dist > 0.75 * radius) & (np.sin(18 * angle) > 0.3), -7.0, 0.0)  # grooves on the outer band
    shade = 42.0 + 6.0 * ((xx - cx) * 0.6 - (yy - cy) * 0.8) / radius + tread + 3.0 * np.cos(dist * 0.5)
    return shade.astype(np.float32), mask, (cx, cy, radius)


def _plate_nut(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """A light hexagonal nut with a round hole: (grey float32 (H, W), mask bool, (cx, cy, radius))."""
    cx, cy = (size / 2 + rng.uniform(-0.05, 0.05, 2) * size).tolist()
    radius, turn = size * rng.uniform(0.32, 0.36), rng.uniform(0, np.pi / 3)
    corners = [(cx + radius * np.cos(turn + k * np.pi / 3), cy + radius * np.sin(turn + k * np.pi / 3)) for k in range(6)]
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(np.array(corners) * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dist = np.hypot(xx - cx, yy - cy)
    mask = (mask > 0) & (dist >= 0.3 * radius)
    shade = 228.0 - 4.0 * ((xx - cx) * 0.6 + (yy - cy) * 0.8) / radius + 4.0 * np.sin(dist * 1.1)  # lathe rings
    return shade.astype(np.float32), mask, (cx, cy, radius)


def _anywhere(rng: np.random.Generator, geometry: tuple[float, float, float]) -> np.ndarray:
    _, _, side = geometry
    return rng.uniform(0.08 * side, 0.92 * side, 2)


def render_variant_pair(category: str, seed: int, kind: str, number: int, size: int = 256
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """One scene of a variant: (clean uint8 RGB (size, size, 3), the same scene with the defect, defect
    mask uint8 {0, 255} or None for "good", foreground truth uint8 (size, size), 255 = part; all 255 for
    ``demo-texture``). The two images differ exactly where the mask is 255. Same arguments, same bytes."""
    if category not in VARIANTS:
        raise ValueError(f"unknown demo variant '{category}'")
    rng = _rng(seed, f"{category}/{kind}", number)
    point = _point_on_part
    if category == "demo-texture":
        image, part = _texture(rng, size), np.ones((size, size), bool)
        geometry, point = (0.0, 0.0, float(size)), _anywhere
    else:
        background = _dark_cloth(size) if category == "demo-dark" else _light_plate(size)
        shade, part, geometry = (_ring if category == "demo-dark" else _plate_nut)(rng, size)
        image = background * rng.uniform(0.97, 1.03) + rng.normal(0, 1.5, (size, size)).astype(np.float32)
        image[part] = shade[part] + rng.normal(0, 1.5, int(part.sum()))
    tint = np.array([1.0, 0.99, 1.02], np.float32) if category != "demo-dark" else np.array([0.95, 0.97, 1.05], np.float32)
    clean = np.clip(image[..., None] * tint, 0, 255).round().astype(np.uint8)
    truth = np.where(part, 255, 0).astype(np.uint8)
    if kind == "good":
        return clean, clean, None, truth
    for _ in range(20):  # redraw until the clipped defect is visible (deterministic: same rng stream)
        mask = np.where(part, _defect_mask(rng, kind, size, geometry, point), 0).astype(np.uint8)
        if mask.sum() >= 255 * 6:
            break
    inside = mask > 0
    defective = clean.copy()
    colour = np.array(_COLOURS[category][kind], np.float32)
    defective[inside] = (0.25 * clean[inside] + 0.75 * colour).round().astype(np.uint8)
    return clean, defective, mask, truth


def render_variant(category: str, seed: int, kind: str, number: int, size: int = 256
                   ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """One image of a variant: (uint8 RGB (size, size, 3), defect mask or None, foreground truth); see
    ``render_variant_pair``."""
    _, image, mask, truth = render_variant_pair(category, seed, kind, number, size)
    return image, mask, truth


def variant_image(category: str, seed: int, kind: str, number: int, size: int = 256) -> tuple[np.ndarray, np.ndarray | None]:
    """``render_variant`` without the foreground truth (``demo.render_image``'s contract)."""
    image, mask, _ = render_variant(category, seed, kind, number, size)
    return image, mask
