"""PR-curve rows for ``dvc plots``: end points, monotone recall, AP from the rows, downsampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import binary_average_precision

from anogen_data.detector.metrics import binary_metrics_and_curve, evaluate_with_curves, min_max


def step_ap(rows: list[dict]) -> float:
    """AP as the step sum over recall-ascending rows: each recall gain times the precision where it is reached."""
    return sum((b["recall"] - a["recall"]) * b["precision"] for a, b in zip(rows, rows[1:]))


def test_hand_made_curve():
    # ranked: .8 (pos), .4 (neg), .35 (pos), .1 (neg) -> thresholds give (R, P): (.5, 1), (.5, .5), (1, 2/3), (1, .5)
    _, rows = binary_metrics_and_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    assert [r["recall"] for r in rows] == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert [r["precision"] for r in rows] == pytest.approx([1, 1, 0.5, 2 / 3, 0.5], abs=1e-6)
    assert step_ap(rows) == pytest.approx(5 / 6, abs=1e-6)


def test_pixel_curve_step_sum_equals_pixel_ap():
    maps = [np.array([[0.9, 0.2, 0.1], [0.7, 0.3, 0.05]]), np.array([[0.6, 0.8], [0.15, 0.4]])]
    masks = [np.array([[255, 0, 0], [0, 255, 0]], np.uint8), np.array([[0, 255], [0, 0]], np.uint8)]
    metrics, curves = evaluate_with_curves([0.9, 0.8], [1, 1], maps, masks)
    pixel = curves["pixel"]
    assert (pixel[0]["recall"], pixel[0]["precision"]) == (0.0, 1.0)
    assert pixel[-1]["recall"] == 1.0 and pixel[-1]["precision"] == pytest.approx(3 / 10, abs=1e-6)  # 3 of 10 pixels
    assert all(a["recall"] <= b["recall"] for a, b in zip(pixel, pixel[1:]))
    assert step_ap(pixel) == pytest.approx(metrics["pixel_ap"], abs=1e-6)
    assert curves["image"] == [] and np.isnan(metrics["image_ap"])  # one class: undefined, no rows


def test_long_curve_is_downsampled_keeping_ends_and_ap():
    rng = np.random.default_rng(0)
    target = rng.random(20_000) < 0.1
    scores = rng.normal(size=target.size) + 1.5 * target
    metrics, rows = binary_metrics_and_curve(scores, target, max_points=200)
    assert 150 <= len(rows) <= 200
    assert rows[0] == {"recall": 0.0, "precision": 1.0}
    assert rows[-1]["recall"] == 1.0 and rows[-1]["precision"] == pytest.approx(target.mean(), abs=1e-6)
    assert all(a["recall"] <= b["recall"] for a, b in zip(rows, rows[1:]))
    expected = float(binary_average_precision(min_max(scores), torch.as_tensor(target).long()))
    assert metrics["ap"] == pytest.approx(expected, abs=1e-9)  # AP from the one curve = torchmetrics' AP
    assert step_ap(rows) == pytest.approx(expected, abs=0.01)  # 200 points still trace the curve
