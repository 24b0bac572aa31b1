"""On-the-fly classical anomalies for detector training: DRAEM Perlin and CutPaste.

- Perlin: DRAEM (Zavrtanik et al., ICCV 2021, Sec. 3.3): threshold 2-D Perlin noise into a blob mask,
  fill it with a texture (DRAEM uses DTD; we use another good image of the same category, colour
  jittered), blended with opacity 1 - beta, beta ~ U(0, 0.8).
- CutPaste: Li et al., CVPR 2021: cut a rectangle of the image and paste it elsewhere, jittered.

Pure functions of (image, texture, numpy Generator): one per-sample generator gives the same bytes.
Images are float32 (H, W, 3) in [0, 1]; returned masks are float32 (H, W) in {0, 1}, 1 = defect.
"""

from __future__ import annotations

import numpy as np


def perlin_noise(shape: tuple[int, int], res: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """2-D gradient (Perlin) noise, float (H, W) in about [-1, 1]; ``res`` lattice cells per axis.

    Computed at a size divisible by ``res`` and cropped, so any (H, W) works.
    """
    ry, rx = res
    h = -(-shape[0] // ry) * ry
    w = -(-shape[1] // rx) * rx
    angles = rng.uniform(0, 2 * np.pi, (ry + 1, rx + 1))
    grads = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    ys = np.arange(h) * ry / h
    xs = np.arange(w) * rx / w
    yi, xi = ys.astype(int), xs.astype(int)
    fy, fx = (ys - yi)[:, None], (xs - xi)[None, :]

    def dot(oy: int, ox: int) -> np.ndarray:
        g = grads[yi[:, None] + oy, xi[None, :] + ox]
        return g[..., 0] * (fx - ox) + g[..., 1] * (fy - oy)

    fade_y, fade_x = 6 * fy**5 - 15 * fy**4 + 10 * fy**3, 6 * fx**5 - 15 * fx**4 + 10 * fx**3
    top = dot(0, 0) * (1 - fade_x) + dot(0, 1) * fade_x
    bottom = dot(1, 0) * (1 - fade_x) + dot(1, 1) * fade_x
    noise = top * (1 - fade_y) + bottom * fade_y
    return (np.sqrt(2) * noise)[: shape[0], : shape[1]]


def perlin_mask(shape: tuple[int, int], rng: np.random.Generator, threshold: float = 0.5) -> np.ndarray:
    """DRAEM's anomaly shape: Perlin noise at a random scale 2^k (k in 0..5), thresholded. (H, W) {0, 1}.

    Redrawn (up to 8 times) until the mask is non-empty; falls back to a small central square.
    """
    for _ in range(8):
        res = (2 ** int(rng.integers(0, 6)), 2 ** int(rng.integers(0, 6)))
        noise = perlin_noise(shape, res, rng)
        noise = np.rot90(noise, int(rng.integers(0, 4))) if shape[0] == shape[1] else noise
        mask = (noise > threshold).astype(np.float32)
        if mask.sum() > 0.001 * mask.size:
            return mask
    mask = np.zeros(shape, np.float32)
    mask[shape[0] // 2 - 2 : shape[0] // 2 + 2, shape[1] // 2 - 2 : shape[1] // 2 + 2] = 1
    return mask


def jitter_colour(texture: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random brightness, contrast and per-channel gain (a stand-in for DRAEM's imgaug set)."""
    gain = rng.uniform(0.6, 1.4, size=3).astype(np.float32)
    contrast = rng.uniform(0.6, 1.6)
    mean = texture.mean()
    out = (texture - mean) * contrast + mean * rng.uniform(0.6, 1.4)
    return np.clip(out * gain, 0, 1).astype(np.float32)


def perlin_anomaly(image: np.ndarray, texture: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """DRAEM Perlin anomaly on ``image`` with ``texture`` (same shape). Returns (image, mask)."""
    mask = perlin_mask(image.shape[:2], rng)
    texture = jitter_colour(np.rot90(texture, int(rng.integers(0, 4))) if texture.shape[0] == texture.shape[1] else texture, rng)
    beta = rng.uniform(0.0, 0.8)
    m = mask[..., None]
    out = image * (1 - m) + (1 - beta) * texture * m + beta * image * m
    return out.astype(np.float32), mask


def cutpaste_anomaly(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """CutPaste: a rectangle (2-15% of the area, aspect 0.3-3.3) moved elsewhere, colour jittered."""
    h, w = image.shape[:2]
    area = rng.uniform(0.02, 0.15) * h * w
    aspect = np.exp(rng.uniform(np.log(0.3), np.log(3.3)))
    ph = int(np.clip(np.sqrt(area * aspect), 2, h - 1))
    pw = int(np.clip(np.sqrt(area / aspect), 2, w - 1))
    sy, sx = int(rng.integers(0, h - ph)), int(rng.integers(0, w - pw))
    dy, dx = int(rng.integers(0, h - ph)), int(rng.integers(0, w - pw))
    patch = jitter_colour(image[sy : sy + ph, sx : sx + pw].copy(), rng)
    out = image.copy()
    out[dy : dy + ph, dx : dx + pw] = patch
    mask = np.zeros((h, w), np.float32)
    mask[dy : dy + ph, dx : dx + pw] = 1
    return out.astype(np.float32), mask


def flip_rotate(arrays: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The same random horizontal/vertical flip (and 180-degree turn) on every array; keeps the shape."""
    out = arrays
    if rng.random() < 0.5:
        out = [a[:, ::-1] for a in out]
    if rng.random() < 0.5:
        out = [a[::-1] for a in out]
    return [np.ascontiguousarray(a) for a in out]
