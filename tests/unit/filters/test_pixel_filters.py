"""Mask sanity and mask-image agreement on hand-made arrays with hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from anogen_data.errors import AnogenError
from anogen_data.filters.change import change_iou, change_map, dilate, leakage
from anogen_data.filters.mask_sanity import mask_area_fraction, mask_components, mask_foreground_fraction


def _mask(*boxes, size=20):
    mask = np.zeros((size, size), np.uint8)
    for x0, y0, x1, y1 in boxes:
        mask[y0:y1, x0:x1] = 255
    return mask


def test_area_fraction():
    assert mask_area_fraction(_mask((0, 0, 10, 4))) == 40 / 400
    assert mask_area_fraction(_mask()) == 0.0


def test_components_count_pieces_but_not_border_specks():
    assert mask_components(_mask()) == 0
    assert mask_components(_mask((0, 0, 5, 5), (10, 10, 15, 15))) == 2
    # a 1-pixel speck beside a 100-pixel piece is under 1 % of the mask and under 4 px: not a piece
    assert mask_components(_mask((0, 0, 10, 10), (15, 15, 16, 16))) == 1
    # confetti: 9 separate 2x2 pieces all count
    confetti = _mask(*[(x, y, x + 2, y + 2) for x in (0, 6, 12) for y in (0, 6, 12)])
    assert mask_components(confetti) == 9


def test_foreground_fraction():
    foreground = _mask((0, 0, 10, 20))  # left half is the object
    assert mask_foreground_fraction(_mask((5, 0, 15, 2)), foreground) == 0.5
    assert mask_foreground_fraction(_mask((12, 0, 15, 2)), foreground) == 0.0
    assert mask_foreground_fraction(_mask(), foreground) == 1.0  # empty: area's failure, not this one's
    assert mask_foreground_fraction(_mask((12, 0, 15, 2)), None) == 1.0  # texture: all object


def test_change_map_threshold_and_size_check():
    source = np.full((4, 4, 3), 100, np.uint8)
    image = source.copy()
    image[0, 0, 2] = 113  # 13 > 12 in one channel
    image[1, 1] = 112  # 12 is not > 12
    changed = change_map(image, source, 12)
    assert changed.sum() == 1 and changed[0, 0]
    with pytest.raises(AnogenError, match="differ in size"):
        change_map(image[:2], source, 12)


def test_change_iou_hand_values():
    changed = _mask((0, 0, 10, 10)) > 0
    assert change_iou(_mask((0, 0, 10, 10)), changed) == 1.0
    assert change_iou(_mask((0, 0, 10, 5)), changed) == 0.5
    assert change_iou(_mask((5, 0, 15, 10)), changed) == pytest.approx(50 / 150)
    assert change_iou(_mask(), np.zeros((20, 20), bool)) == 0.0


def test_leakage_counts_change_outside_the_dilated_mask():
    mask = _mask((5, 5, 10, 10))
    assert dilate(mask, 1).sum() == 7 * 7 - 4  # ellipse kernel 3x3 is a cross: corners stay out
    inside = mask > 0
    assert leakage(mask, inside, 2) == 0.0
    elsewhere = _mask((14, 14, 19, 19)) > 0  # the same 25 changed pixels, beside the mask
    assert leakage(mask, elsewhere, 2) == 1.0
    halo = dilate(mask, 1)  # feathering right at the border is forgiven by the radius
    assert leakage(mask, halo, 2) == 0.0 and leakage(mask, halo, 0) == pytest.approx(20 / 45)
