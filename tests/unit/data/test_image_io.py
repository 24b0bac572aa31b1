"""Mask reading: the alpha channel of an RGBA / grey+alpha mask is never counted as defect."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from anogen_data.data.image_io import read_mask


def _mask_colour() -> np.ndarray:
    colour = np.zeros((8, 10), np.uint8)
    colour[2:5, 3:7] = 255
    return colour


@pytest.mark.parametrize("alpha", [255, 0, 128])
def test_rgba_mask_uses_colour_channels(tmp_path, alpha):
    colour = _mask_colour()
    rgba = np.dstack([colour, colour, colour, np.full_like(colour, alpha)])
    path = tmp_path / "m.png"
    assert cv2.imwrite(str(path), rgba)
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape == (8, 10, 4)
    mask = read_mask(path)
    assert mask.dtype == np.uint8 and mask.shape == (8, 10)
    np.testing.assert_array_equal(mask, colour)  # 12 defect pixels, not 80 (opaque alpha is not a defect)


def test_grey_alpha_mask_uses_grey_channel(tmp_path):
    from PIL import Image

    colour = _mask_colour()
    path = tmp_path / "la.png"
    Image.fromarray(np.dstack([colour, np.full_like(colour, 255)]), mode="LA").save(path)
    np.testing.assert_array_equal(read_mask(path), colour)


def test_rgb_mask_any_channel_counts(tmp_path):
    colour = _mask_colour()
    rgb = np.dstack([np.zeros_like(colour), colour, np.zeros_like(colour)])  # green-only mask
    path = tmp_path / "g.png"
    assert cv2.imwrite(str(path), rgb)
    np.testing.assert_array_equal(read_mask(path), colour)
