"""Pure colour operations driven by recipe numbers (shared by the CPU backends).

All functions take and return uint8 RGB (h, w, 3); parameters are plain floats/ints stored in recipes,
so applying the same recipe gives the same bytes. Colour jitter follows CutPaste (Li et al., CVPR 2021);
the strong texture augmentation (invert, posterize, channel shuffle) follows DRAEM's augmenters
(Zavrtanik et al., ICCV 2021).
"""

from __future__ import annotations

import cv2
import numpy as np


def draw_jitter(rng: np.random.Generator, strength: float = 0.1) -> dict:
    """Random jitter numbers: brightness/contrast/saturation gains around 1 and a hue shift in degrees."""
    gains = rng.uniform(1 - strength, 1 + strength, size=3)
    return {
        "brightness": float(gains[0]),
        "contrast": float(gains[1]),
        "saturation": float(gains[2]),
        "hue": float(rng.uniform(-strength, strength) * 180),
    }


def apply_jitter(image: np.ndarray, jitter: dict) -> np.ndarray:
    """Brightness x, contrast around the mean, saturation x and hue + degrees (OpenCV hue is 0..179)."""
    out = image.astype(np.float32) * jitter["brightness"]
    mean = out.mean()
    out = np.clip((out - mean) * jitter["contrast"] + mean, 0, 255).astype(np.uint8)
    if jitter.get("saturation", 1.0) == 1.0 and jitter.get("hue", 0.0) == 0.0:
        return out
    hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = np.mod(hsv[..., 0] + jitter["hue"] / 2.0, 180.0)
    hsv[..., 1] = np.clip(hsv[..., 1] * jitter["saturation"], 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


def draw_strong(rng: np.random.Generator) -> dict:
    """DRAEM-like strong augmentation numbers for anomaly textures."""
    return {
        **draw_jitter(rng, 0.5),
        "invert": bool(rng.random() < 0.3),
        "posterize_bits": int(rng.integers(3, 9)),  # 8 = no posterize
        "channels": [int(c) for c in rng.permutation(3)],
    }


def apply_strong(image: np.ndarray, params: dict) -> np.ndarray:
    """Apply ``draw_strong`` numbers: jitter, channel shuffle, posterize, invert."""
    out = apply_jitter(image, params)[..., params["channels"]]
    shift = 8 - params["posterize_bits"]
    out = (out >> shift) << shift
    return (255 - out) if params["invert"] else np.ascontiguousarray(out)
