"""``filters.runner.decide``: each threshold at its boundary, and the duplicate rule through ``decide``.

A value exactly at a threshold passes (the config says "below this" / "above this"); a sample dropped
by another filter is never the original that later samples are duplicates of.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from anogen_data.config import FilterConfig
from anogen_data.filters.runner import decide

CONFIG = FilterConfig()
PASSING = {  # every score comfortably inside its limits
    "mask_area": 0.01, "mask_components": 1, "mask_foreground": 1.0, "change_iou": 0.8, "leakage": 0.0,
    "defect_distance": 0.2, "good_distance": 0.3,
}
# (score, config field, a value just past the limit): written out here, not read from runner.THRESHOLDS
BOUNDARIES = [
    ("mask_area", "min_area", CONFIG.min_area * (1 - 1e-6)),
    ("mask_area", "max_area", CONFIG.max_area * (1 + 1e-6)),
    ("mask_components", "max_components", CONFIG.max_components + 1),
    ("mask_foreground", "min_foreground", CONFIG.min_foreground * (1 - 1e-6)),
    ("change_iou", "min_change_iou", CONFIG.min_change_iou * (1 - 1e-6)),
    ("leakage", "max_leakage", CONFIG.max_leakage * (1 + 1e-6)),
    ("defect_distance", "max_defect_distance", CONFIG.max_defect_distance * (1 + 1e-6)),
    ("good_distance", "min_good_distance", CONFIG.min_good_distance * (1 - 1e-6)),
]


def _unit(*values: float) -> np.ndarray:
    return np.array(values, np.float64)


@pytest.mark.parametrize(("name", "field", "past"), BOUNDARIES, ids=[f for _, f, _ in BOUNDARIES])
def test_a_score_at_its_threshold_passes_and_just_past_it_fails(name, field, past):
    at = getattr(CONFIG, field)
    rows = decide(["at", "past"], [{**PASSING, name: at}, {**PASSING, name: past}], np.eye(2), CONFIG)
    assert rows[0]["keep"] and rows[0]["reasons"] == []
    assert not rows[1]["keep"]
    assert len(rows[1]["reasons"]) == 1 and rows[1]["reasons"][0].startswith(f"{name}: ")


def test_a_similarity_at_max_duplicate_passes_and_just_above_fails():
    limit = CONFIG.max_duplicate
    at = _unit(limit, math.sqrt(1 - limit**2), 0.0)  # cosine with the first = limit exactly
    above = _unit(limit + 1e-6, math.sqrt(1 - (limit + 1e-6) ** 2), 0.0)
    assert float(_unit(1, 0, 0) @ at) == limit
    rows = decide(["a", "at"], [PASSING] * 2, np.stack([_unit(1, 0, 0), at]), CONFIG)
    assert [r["keep"] for r in rows] == [True, True] and rows[1]["scores"]["duplicate"] == round(limit, 6)
    rows = decide(["a", "above"], [PASSING] * 2, np.stack([_unit(1, 0, 0), above]), CONFIG)
    assert [r["keep"] for r in rows] == [True, False]
    assert rows[1]["reasons"] == [f"duplicate: {limit + 1e-6:.4g} > {limit:g} (of a)"]


def test_a_sample_at_the_duplicate_threshold_is_kept_and_becomes_an_original():
    limit = CONFIG.max_duplicate
    at = _unit(limit, math.sqrt(1 - limit**2), 0.0)
    rows = decide(["a", "b", "c"], [PASSING] * 3, np.stack([_unit(1, 0, 0), at, at]), CONFIG)
    assert [r["keep"] for r in rows] == [True, True, False]
    assert rows[2]["reasons"][0].endswith("(of b)")  # c copies b, which was kept


def test_a_sample_dropped_by_another_filter_is_never_the_original():
    same = np.tile(_unit(0, 1, 0), (3, 1))
    scores = [{**PASSING, "mask_area": 0.0}, PASSING, PASSING]  # the first fails min_area
    rows = decide(["bad", "first_good", "copy"], scores, same, CONFIG)
    assert [r["keep"] for r in rows] == [False, True, False]
    assert rows[0]["reasons"] == [f"mask_area: 0 < {CONFIG.min_area:g}"]
    assert rows[1]["reasons"] == []  # identical to "bad", but "bad" was dropped: first_good is the original
    assert rows[2]["reasons"] == [f"duplicate: 1 > {CONFIG.max_duplicate:g} (of first_good)"]
