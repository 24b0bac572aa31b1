"""The DualAnoDiff part-image mask: binary, hand-computed on hand-made images, agreement IoU by hand."""

from __future__ import annotations

import numpy as np

from anogen_data.synthesis.dual_mask import change_map, fuse_attention, mask_agreement, part_foreground, part_mask


def _part_with_blobs() -> np.ndarray:
    part = np.zeros((32, 32, 3), np.uint8)
    part[4:12, 4:12] = (200, 40, 40)  # blob A
    part[20:28, 18:30] = (30, 180, 90)  # blob B
    part[16, 2] = (10, 10, 10)  # darker than the black threshold: not defect
    return part


def test_threshold_against_black_equals_the_hand_mask_without_morphology():
    expected = np.zeros((32, 32), np.uint8)
    expected[4:12, 4:12] = 255
    expected[20:28, 18:30] = 255
    got = part_foreground(_part_with_blobs(), black_threshold=24, open_px=0, close_px=0)
    assert got.dtype == np.uint8 and set(np.unique(got)) == {0, 255}
    np.testing.assert_array_equal(got, expected)


def test_only_components_where_the_whole_image_changed_are_kept():
    background = np.full((32, 32, 3), 90, np.uint8)
    whole = background.copy()
    whole[22:26, 20:24] = 10  # the whole image changed inside blob B only
    expected = np.zeros((32, 32), np.uint8)
    expected[20:28, 18:30] = 255
    got = part_mask(_part_with_blobs(), whole, background, open_px=0, close_px=0)
    np.testing.assert_array_equal(got, expected)


def test_largest_component_is_kept_when_nothing_overlaps_the_change():
    background = np.full((32, 32, 3), 90, np.uint8)
    got = part_mask(_part_with_blobs(), background.copy(), background, open_px=0, close_px=0)
    assert (got > 0).sum() == 8 * 12 and got[24, 24] == 255  # blob B (96 px) beats blob A (64 px)


def test_morphology_drops_specks_and_fills_pinholes():
    part = np.zeros((48, 48, 3), np.uint8)
    part[10:30, 10:30] = 220
    part[20, 20] = 0  # pinhole
    part[40, 40] = 220  # speck
    mask = part_mask(part)
    assert mask[20, 20] == 255 and mask[40, 40] == 0
    assert mask[15:25, 15:25].all() and set(np.unique(mask)) == {0, 255}


def test_planted_part_gives_a_non_empty_mask_and_black_gives_empty():
    rng = np.random.default_rng(0)
    part = np.zeros((64, 64, 3), np.uint8)
    part[20:40, 25:45] = rng.integers(60, 255, (20, 20, 3), dtype=np.uint8)
    assert part_mask(part).any()
    assert not part_mask(np.zeros((64, 64, 3), np.uint8)).any()


def test_agreement_is_the_iou_with_the_change_map():
    background = np.zeros((10, 10, 3), np.uint8)
    whole = background.copy()
    whole[0:4, 0:5] = 255  # 20 changed pixels
    mask = np.zeros((10, 10), np.uint8)
    mask[0:4, 2:7] = 255  # 20 mask pixels, 12 of them changed
    assert change_map(whole, background).sum() // 255 == 20
    assert mask_agreement(mask, whole, background) == 12 / 28
    assert mask_agreement(np.zeros((10, 10), np.uint8), background, background) == 1.0


def test_fuse_attention_blends_by_hand_values():
    mask = np.array([[255, 255, 0, 0]], np.uint8)
    attention = np.array([[1.0, 0.2, 0.9, 0.4]])
    np.testing.assert_array_equal(fuse_attention(mask, attention, 0.0), mask)
    np.testing.assert_array_equal(fuse_attention(mask, attention, 0.5), [[255, 255, 0, 0]])  # scores 1, .6, .45, .2
    np.testing.assert_array_equal(fuse_attention(mask, attention, 1.0), [[255, 0, 255, 0]])
