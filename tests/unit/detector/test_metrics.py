"""Metrics against hand-computed values and against a slow explicit-threshold reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from anogen_data.detector.metrics import aupro, binary_metrics, evaluate, image_score, min_max


def slow_aupro(maps, masks, fpr_limit=0.3):
    """Reference: sweep every distinct score as a threshold; label regions and count overlaps by hand."""
    scores = np.concatenate([m.ravel() for m in maps])
    fprs, pros = [0.0], [0.0]
    for t in sorted(set(scores.tolist()), reverse=True):
        false_pos = normal = 0
        overlaps = []
        for score, mask in zip(maps, masks):
            hit = score >= t
            false_pos += int((hit & (mask == 0)).sum())
            normal += int((mask == 0).sum())
            labels, count = ndimage.label(mask > 0, structure=np.ones((3, 3)))  # 8-connected
            for region in range(1, count + 1):
                inside = labels == region
                overlaps.append((hit & inside).sum() / inside.sum())
        fprs.append(false_pos / normal)
        pros.append(float(np.mean(overlaps)))
    fprs, pros = np.array(fprs), np.array(pros)
    keep = fprs <= fpr_limit
    x, y = list(fprs[keep]), list(pros[keep])
    if fprs.max() > fpr_limit:
        nxt = np.argmax(fprs > fpr_limit)
        y.append(np.interp(fpr_limit, [fprs[nxt - 1], fprs[nxt]], [pros[nxt - 1], pros[nxt]]))
        x.append(fpr_limit)
    area = sum((x[i + 1] - x[i]) * (y[i + 1] + y[i]) / 2 for i in range(len(x) - 1))
    return area / fpr_limit


def test_image_metrics_match_hand_values():
    out = binary_metrics([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    # pairs (pos, neg): (.35,.1) ok, (.35,.4) wrong, (.8, both) ok -> 3/4
    assert out["auroc"] == pytest.approx(0.75)
    # ranked: .8 (pos, P=1), .4 (neg), .35 (pos, P=2/3): AP = 0.5*1 + 0.5*2/3
    assert out["ap"] == pytest.approx(5 / 6)
    # best threshold .35: precision 2/3, recall 1 -> F1 0.8
    assert out["f1_max"] == pytest.approx(0.8)


def test_scores_outside_unit_range_are_not_squashed():
    # the same ranking scaled far outside [0, 1] must give the same numbers
    raw = np.array([0.1, 0.4, 0.35, 0.8]) * 1000 - 300
    assert binary_metrics(raw, [0, 0, 1, 1]) == binary_metrics([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    assert min_max(np.array([2.0, 4.0])).tolist() == [0.0, 1.0]


def test_single_class_gives_nan():
    assert np.isnan(binary_metrics([0.1, 0.2], [0, 0])["auroc"])


def test_aupro_hand_case_one_region():
    # region {0.9, 0.3}; normals {0.5, 0.2, 0.1, 0.05}
    maps = [np.array([[0.9, 0.3, 0.5], [0.2, 0.1, 0.05]])]
    masks = [np.array([[255, 255, 0], [0, 0, 0]], dtype=np.uint8)]
    # curve (0,.5) -> (.25,.5) -> (.25,1) -> (.3,1): area .125 + .05 = .175, / .3
    assert aupro(maps, masks) == pytest.approx(0.175 / 0.3)


def test_aupro_weights_regions_not_pixels():
    maps = [np.array([[0.9, 0.5]]), np.array([[0.8, 0.3, 0.3, 0.1]])]
    masks = [np.array([[1, 0]]), np.array([[1, 1, 1, 0]])]
    # at FPR 0 the 1-px region is fully found (1) and the 3-px one a third: PRO = (1 + 1/3) / 2
    assert aupro(maps, masks) == pytest.approx(2 / 3)


def test_aupro_regions_are_8_connected():
    # (0,0) touches (1,1) only at a corner: one 3-px region with 8-connectivity (MVTec, anomalib),
    # a 1-px and a 2-px region with 4-connectivity
    mask = np.array([[255, 0, 0], [0, 255, 255], [0, 0, 0]], dtype=np.uint8)
    score = np.array([[0.9, 0.5, 0.15], [0.1, 0.7, 0.2], [0.08, 0.05, 0.01]])
    # normals {.5, .15, .1, .08, .05, .01}: FPR 0 down to .7 (PRO 2/3: 2 of 3 px), 1/6 at .5, PRO 1 at .2,
    # then FPR 2/6 > .3 at .15: area = 1/6 * 2/3 + (.3 - 1/6) * 1 = 11/45, / .3 = 22/27
    assert aupro([score], [mask]) == pytest.approx(22 / 27)
    # 4-connected it would be 1/6 * (1 + 1/2) / 2 + (.3 - 1/6) = 31/120, / .3 = 31/36
    assert aupro([score], [mask]) != pytest.approx(31 / 36)
    assert slow_aupro([score], [mask]) == pytest.approx(22 / 27)


def test_aupro_perfect_and_inverted():
    mask = np.zeros((8, 8), np.uint8)
    mask[2:4, 2:5] = 255
    assert aupro([mask.astype(float)], [mask]) == pytest.approx(1.0)
    assert aupro([-mask.astype(float)], [mask]) == pytest.approx(0.0)


@pytest.mark.parametrize("seed,decimals", [(0, 2), (1, 2), (2, 2), (3, 1), (4, 1), (5, 3)])
def test_aupro_agrees_with_slow_reference(seed, decimals):
    rng = np.random.default_rng(seed)
    maps, masks = [], []
    for _ in range(4):
        mask = np.zeros((24, 24), np.uint8)
        for _ in range(rng.integers(0, 3)):
            y, x = rng.integers(0, 18, size=2)
            h, w = rng.integers(2, 6, size=2)
            mask[y : y + h, x : x + w] = 255
        # quantised scores: ties exercise the "one point per distinct threshold" rule
        score = np.round(rng.random((24, 24)) * 0.6 + (mask > 0) * rng.random() * 0.5, decimals)
        maps.append(score)
        masks.append(mask)
    if not any(m.any() for m in masks):
        masks[0][3:7, 3:7] = 255
    assert aupro(maps, masks) == pytest.approx(slow_aupro(maps, masks), abs=1e-3)
    assert aupro(maps, masks, fpr_limit=0.05) == pytest.approx(slow_aupro(maps, masks, 0.05), abs=1e-3)


def test_evaluate_reports_every_metric_on_mixed_sizes():
    rng = np.random.default_rng(0)
    masks = [np.zeros((16, 16), np.uint8), np.zeros((8, 20), np.uint8)]
    masks[1][2:5, 3:9] = 255
    maps = [rng.random(m.shape) * 0.5 + (m > 0) for m in masks]
    out = evaluate([0.2, 0.9], [0, 1], maps, masks)
    assert set(out) == {"image_auroc", "image_ap", "image_f1_max", "pixel_auroc", "pixel_ap", "pixel_f1_max", "aupro"}
    assert out["pixel_auroc"] == pytest.approx(1.0)
    assert out["aupro"] == pytest.approx(1.0)
    assert out["image_auroc"] == pytest.approx(1.0)


@pytest.mark.parametrize("bins", [1, 3, 64])
def test_aupro_exact_whatever_the_cell_count(bins, monkeypatch):
    # few cells: almost every normal pixel shares a cell with an anomalous score or the FPR limit
    import anogen_data.detector.metrics as metrics

    rng = np.random.default_rng(bins)
    masks = [np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.uint8)]
    masks[0][3:8, 2:6] = 255
    masks[1][10:12, 4:14] = 255
    maps = [np.round(rng.random((16, 16)) + 0.3 * (m > 0), 2) for m in masks]
    expected = slow_aupro(maps, masks)
    monkeypatch.setattr(metrics, "_BINS", bins)
    assert aupro(maps, masks) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("sample", [7, 64])
def test_aupro_exact_with_a_strided_sample_bound(sample, monkeypatch):
    # float32 maps larger than the sample: the FPR-limit bound comes from every k-th pixel
    import anogen_data.detector.metrics as metrics

    rng = np.random.default_rng(sample)
    masks = [np.zeros((32, 32), np.uint8) for _ in range(3)]
    masks[0][4:9, 5:12] = 255
    masks[2][20:23, 3:30] = 255
    masks[2][1:3, 1:3] = 255
    maps = [(rng.random((32, 32)) + 0.4 * (m > 0)).astype(np.float32) for m in masks]
    expected = slow_aupro(maps, masks)
    monkeypatch.setattr(metrics, "_SAMPLE", sample)
    assert aupro(maps, masks) == pytest.approx(expected, abs=1e-9)


def test_aupro_exact_when_the_sample_bound_is_too_high(monkeypatch):
    # the sampled pixels (every 4th) are the highest normal scores: the bound keeps too few candidates,
    # so the count check must fall back to all normal pixels
    import anogen_data.detector.metrics as metrics

    rng = np.random.default_rng(7)
    mask = np.zeros((16, 16), np.uint8)
    mask[5:9, 6:10] = 255
    score = rng.random((16, 16)) * 0.5
    score.ravel()[::4] += 0.5
    score[mask > 0] = rng.random(16) * 0.8 + 0.2
    monkeypatch.setattr(metrics, "_SAMPLE", 64)
    assert aupro([score], [mask]) == pytest.approx(slow_aupro([score], [mask]), abs=1e-9)


def test_image_score_is_the_max_of_the_mean_pooled_map_by_hand():
    hot = torch.zeros(5, 6)
    hot[2, 2] = 9.0  # a lone hot pixel inside: every 3x3 mean over it has 9 valid cells
    assert image_score(hot, 1) == 9.0  # no pooling: the plain max
    assert image_score(hot, 3) == 1.0
    assert image_score(hot, 2) == 1.0  # an even kernel is made odd (3)
    corner = torch.zeros(5, 6)
    corner[0, 0] = 9.0
    assert image_score(corner, 3) == pytest.approx(9 / 4)  # padding is not counted: 4 valid cells at the corner
    warm = hot.clone()
    warm[3:5, 3:6] = 2.0  # a 2x3 warm block on the bottom edge beats the lone hot pixel once pooled
    assert image_score(warm, 3) == pytest.approx(2.0)
    assert image_score(torch.ones(2, 2), 9) == 1.0  # kernel capped at the map's side
