"""2-D Perlin gradient noise, as used for DRAEM's anomaly masks (Zavrtanik et al., ICCV 2021).

Our own numpy implementation of Perlin's improved noise (quintic fade) on a lattice of random unit
gradients; the random gradients come from the caller's ``np.random.Generator`` so the noise is
reproducible per sample.
"""

from __future__ import annotations

import numpy as np


def _fade(t: np.ndarray) -> np.ndarray:
    return ((6 * t - 15) * t + 10) * t * t * t


def perlin_noise(height: int, width: int, res: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Perlin noise of shape (height, width), float32, values roughly in [-1, 1] (std ~0.2-0.3).

    Args:
        height, width: output size in pixels.
        res: (rows, cols) lattice cells; more cells = smaller blobs.
        rng: the generator that draws the lattice gradients.
    """
    ry, rx = max(1, int(res[0])), max(1, int(res[1]))
    angles = rng.uniform(0.0, 2.0 * np.pi, size=(ry + 1, rx + 1))
    grad = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    ys = np.arange(height) * (ry / height)
    xs = np.arange(width) * (rx / width)
    yi, xi = ys.astype(int), xs.astype(int)
    yf, xf = (ys - yi)[:, None], (xs - xi)[None, :]

    def corner(dy: int, dx: int) -> np.ndarray:
        g = grad[(yi + dy)[:, None], (xi + dx)[None, :]]
        return g[..., 0] * (yf - dy) + g[..., 1] * (xf - dx)

    u, v = _fade(xf), _fade(yf)
    top = corner(0, 0) * (1 - u) + corner(0, 1) * u
    bottom = corner(1, 0) * (1 - u) + corner(1, 1) * u
    return (np.sqrt(2.0) * (top * (1 - v) + bottom * v)).astype(np.float32)


def fractal_noise(height: int, width: int, res: tuple[int, int], rng: np.random.Generator, octaves: int = 3) -> np.ndarray:
    """Sum of ``octaves`` Perlin layers at doubling frequency and halving amplitude, float32 (H, W)."""
    out = np.zeros((height, width), np.float32)
    amp = 1.0
    for octave in range(octaves):
        scale = 2**octave
        out += amp * perlin_noise(height, width, (res[0] * scale, res[1] * scale), rng)
        amp *= 0.5
    return out
