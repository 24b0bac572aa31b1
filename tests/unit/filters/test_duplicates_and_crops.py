"""Near-duplicate scan and defect crop geometry."""

from __future__ import annotations

import numpy as np

from anogen_data.filters.duplicates import near_duplicates
from anogen_data.filters.embed import context_box, crop, mask_box


def _unit(*rows):
    x = np.array(rows, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_first_of_a_group_is_kept_and_later_copies_point_at_it():
    emb = _unit([1, 0], [0, 1], [1, 0], [1, 0.01])
    result = near_duplicates(emb, [True] * 4, threshold=0.99)
    assert result[0] == (0.0, -1)
    assert result[1][0] == 0.0
    assert result[2] == (1.0, 0)
    assert result[3][1] == 0 and result[3][0] > 0.99


def test_a_sample_dropped_elsewhere_is_not_an_original():
    emb = _unit([1, 0], [1, 0], [1, 0])
    sims = [s for s, _ in near_duplicates(emb, [False, True, True], threshold=0.99)]
    assert sims[1] == 0.0  # sample 0 failed another filter: sample 1 becomes the kept original
    assert sims[2] == 1.0


def test_context_box_is_square_padded_and_inside():
    assert context_box((10, 10, 20, 30), 100, 100, pad=0.25, min_side=8) == (0, 5, 30, 35)
    assert context_box((0, 0, 4, 4), 100, 100, pad=0.0, min_side=32) == (0, 0, 32, 32)
    assert context_box((90, 90, 100, 100), 100, 100, pad=0.5, min_side=8) == (80, 80, 100, 100)
    assert context_box((0, 0, 50, 50), 40, 60, pad=0.5, min_side=8) == (0, 5, 40, 45)  # capped by the image


def test_mask_box_and_crop_shapes():
    mask = np.zeros((10, 12), np.uint8)
    mask[2:5, 3:9] = 255
    assert mask_box(mask) == (3, 2, 9, 5)
    assert mask_box(np.zeros((4, 4), np.uint8)) is None
    image = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    assert crop(image, (3, 2, 9, 8), 16).shape == (16, 16, 3)
    assert crop(image, (0, 0, 2, 2), 2).tolist() == image[:2, :2].tolist()
