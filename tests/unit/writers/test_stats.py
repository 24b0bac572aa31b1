"""stats.json accumulators and filter pass rates against hand-computed values; the contact sheet."""

from __future__ import annotations

import numpy as np

from anogen_data.writers.coco import Instance
from anogen_data.writers.contact_sheet import OUTLINE_RGB, ContactSheet
from anogen_data.writers.stats import StatsAccumulator


def _inst(w, h, area):
    return Instance((0, 0, w, h), area, {})


def test_histograms_and_counts_by_hand():
    acc = StatsAccumulator()
    acc.add("train", "good", "real", 100, 100, [], None)
    acc.add("train", "crack", "synthetic", 100, 100, [_inst(10, 10, 50), _inst(2, 2, 4)], "pixel")  # area 54/1e4
    acc.add("test", "crack", "real", 100, 100, [_inst(50, 40, 2000)], "pixel")  # area 0.2
    acc.add("train", "crack", "synthetic", 100, 100, [], "box")
    out = acc.result()
    assert out["totals"] == {"images": 4, "train": 3, "test": 1, "real": 2, "synthetic": 2, "good": 1,
                             "anomalies": 3, "instances": 3, "anomalies_without_instances": 1}
    assert out["counts"] == {"test": {"crack": {"real": 1}}, "train": {"crack": {"synthetic": 2}, "good": {"real": 1}}}
    # bins [0, .001, .003, .01, .03, .1, .3, 1]: 0.0054 -> bin 2, 0.2 -> bin 5
    assert out["mask_area_fraction"]["counts"] == [0, 0, 1, 0, 0, 1, 0]
    # sqrt(100/1e4)=0.1 -> bin 5, sqrt(4/1e4)=0.02 -> bin 3, sqrt(2000/1e4)=0.447 -> bin 6
    assert out["box_size_fraction"]["counts"] == [0, 0, 0, 1, 0, 1, 1]
    assert out["defects_per_image"] == {"0": 1, "1": 1, "2": 1}
    assert out["mask_quality"] == {"box": 1, "pixel": 2}
    assert out["filters"] is None


def test_stats_count_filter_pass_rates_with_the_filter_stage_rule():
    scores = {
        "a": {"keep": True, "reasons": [], "scores": {"mask_area": 0.01, "duplicate": 0.3}},
        "b": {"keep": False, "reasons": ["duplicate: 0.99 > 0.985 (of a)"], "scores": {"mask_area": 0.01, "duplicate": 0.99}},
        "c": {"keep": False, "reasons": ["mask_area: 0 < 0.0002", "duplicate: 1 > 0.985 (of a)"],
              "scores": {"mask_area": 0.0, "duplicate": 1.0}},
        "d": {"keep": True, "reasons": [], "scores": {"mask_area": 0.02, "duplicate": 0.1}},
    }
    acc = StatsAccumulator()
    assert acc.result(scores)["filters"] == {"scored": 4, "kept": 2, "pass_rate": 0.5,
                                             "per_filter": {"duplicate": 0.5, "mask_area": 0.75},
                                             "dropped_by": {"duplicate": 2, "mask_area": 1}}
    assert acc.result({})["filters"]["pass_rate"] is None


def test_contact_sheet_picks_per_group_and_draws_outlines():
    sheet = ContactSheet(per_group=2, max_cells=3, thumb=32, columns=2)
    picks = [sheet.wants("train", "real", "good") for _ in range(3)] + [sheet.wants("train", "syn", "x") for _ in range(2)]
    assert picks == [True, True, False, True, False]  # 2 per group, 3 cells in all
    image = np.full((64, 48, 3), 128, np.uint8)
    mask = np.zeros((64, 48), np.uint8)
    mask[20:40, 10:30] = 255
    tile = sheet.thumbnail(image, mask)
    assert tile.shape == (32, 32, 3)
    red = np.all(tile == OUTLINE_RGB, axis=2)
    assert red.any() and not red[:, :4].any()  # outline inside the letterboxed image only
    assert not np.all(sheet.thumbnail(image, None) == OUTLINE_RGB, axis=2).any()
    for n in range(3):
        sheet.add(n, tile, f"cell {n}")
    assert sheet.render().shape == (2 * (32 + 14), 2 * 32, 3)
