"""benchmarks/downstream.py: the aims are checked on the table as hand-computed (pixel AP, AUPRO in points)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

import downstream  # noqa: E402


def _row(row, ap, aupro, recipe="destseg", seed=0):
    return {"dataset": "bottle", "recipe": recipe if row != "none" else "-", "row": row, "source": row, "seed": seed,
            "image_auroc": 0.9, "pixel_auroc": 0.9, "pixel_ap": ap, "pixel_f1_max": 0.5, "aupro": aupro, "train_s": 10.0}


def test_verdicts_gain_loss_box_share_and_no_synthetic():
    rows = [_row("baseline", 0.40, 0.70), _row("pixel", 0.50, 0.80), _row("box", 0.47, 0.75), _row("none", 0.30, 0.85)]
    lines = downstream.verdicts(rows)
    assert "pixel masks - baseline = +10.0 pixel-AP points (MET" in lines[0]
    assert "worst loss from adding anomalies +0.0 points (MET" in lines[1]
    assert "box labels recover 70 % of the pixel-mask gain (+7.0 of +10.0; MISSED" in lines[2]
    assert "pixel AP 50.0 vs 30.0, AUPRO 80.0 vs 85.0 (MISSED)" in lines[3]  # best by pixel AP loses on AUPRO


def test_verdicts_flag_a_loss_and_means_average_seeds():
    rows = [_row("baseline", 0.40, 0.7, seed=s) for s in (0, 1)] + [_row("pixel", ap, 0.7, seed=s) for s, ap in ((0, 0.36), (1, 0.40))]
    rows += [_row("box", 0.41, 0.7, seed=s) for s in (0, 1)]
    means = downstream.mean_rows(rows)
    pixel = next(r for r in means if r["row"] == "pixel")
    assert abs(pixel["pixel_ap"] - 0.38) < 1e-12 and pixel["source"] == "pixel (mean of 2)"
    lines = downstream.verdicts(means)
    assert "= -2.0 pixel-AP points (MISSED" in lines[0] and "worst loss from adding anomalies -2.0 points (MISSED" in lines[1]
    assert "pixel-mask gain -2.0 < 1 point" in lines[2]
    table = downstream.table(means)
    assert table.count("\n") == 5 and "| bottle | destseg | pixel (mean of 2) | 90.0 | 90.0 | 38.0 |" in table


def test_source_per_dataset():
    assert downstream.source_for("paste,mvtec_grid=paste-aligned", "mvtec_grid") == "paste-aligned"
    assert downstream.source_for("paste,mvtec_grid=paste-aligned", "kolektorsdd") == "paste"
    assert downstream.source_for("anogen", "mvtec_bottle") == "anogen"
