"""Where each image goes: index roles, synthetic records, filter scores, file names."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from anogen_data.errors import AnogenError
from anogen_data.writers.mvtec import MvtecNamer, mask_of
from anogen_data.writers.plan import plan_items


def test_namer_numbers_per_folder_and_keeps_the_mvtec_tree_strict():
    namer = MvtecNamer("widget")
    assert namer.good("train") == ("mvtec/widget/train/good/000.png", None)
    assert namer.good("train")[0] == "mvtec/widget/train/good/001.png"
    assert namer.good("test")[0] == "mvtec/widget/test/good/000.png"
    test_img, test_mask = namer.anomaly("test", "dent", "real")
    shot_img, shot_mask = namer.anomaly("train", "dent", "real")
    syn_img, syn_mask = namer.anomaly("train", "dent", "synthetic")
    assert (test_img, test_mask) == ("mvtec/widget/test/dent/000.png", "mvtec/widget/ground_truth/dent/000_mask.png")
    assert (shot_img, shot_mask) == ("synthetic/widget/images/dent/real_000.png",
                                     "synthetic/widget/masks/dent/real_000.png")
    assert (syn_img, syn_mask) == ("synthetic/widget/images/dent/syn_000000.png",
                                   "synthetic/widget/masks/dent/syn_000000.png")
    assert namer.anomaly("train", "dent", "synthetic")[0].endswith("syn_000001.png")
    assert [mask_of(p) for p in (test_img, shot_img, syn_img)] == [test_mask, shot_mask, syn_mask]
    with pytest.raises(AnogenError, match="test split"):
        namer.anomaly("test", "dent", "synthetic")


def test_namer_refuses_a_number_wider_than_its_field():
    namer = MvtecNamer("widget")
    for _ in range(1000):
        namer.anomaly("test", "dent", "real")
    with pytest.raises(AnogenError, match="more than 1000 real images in test/dent"):
        namer.anomaly("test", "dent", "real")


def test_roles_decide_the_split(inputs):
    items = list(plan_items("widget", inputs.index, inputs.records, inputs.records_dir))
    by_path = {str(i.image_src): i for i in items}
    for entry in inputs.index:
        item = by_path[entry.path]
        if entry.role == "eval":
            assert item.split == "test" and item.source == "real"
        else:
            assert item.split == "train"
        if entry.role == "learn":
            assert item.image_rel.startswith("synthetic/widget/images/") and "/real_" in item.image_rel
    synthetic = [i for i in items if i.source == "synthetic"]
    assert len(synthetic) == len(inputs.records)
    assert all(i.split == "train" and "/syn_" in i.image_rel for i in synthetic)
    assert all(i.record.image_path == i.image_rel and i.record.mask_path == i.mask_rel for i in synthetic)
    assert not any(i.split == "test" and i.source == "synthetic" for i in items)
    assert len({i.image_rel for i in items}) == len(items)


def test_learn_shots_can_be_left_out(inputs):
    items = list(plan_items("widget", inputs.index, include_learn=False))
    learn = [e for e in inputs.index if e.role == "learn"]
    assert len(items) == len(inputs.index) - len(learn)
    assert not any("/real_" in i.image_rel for i in items)


def test_scores_keep_only_kept_records(inputs):
    scores = {r.id: {"keep": n != 1, "reasons": [] if n != 1 else ["sharpness: low"], "scores": {}}
              for n, r in enumerate(inputs.records)}
    synthetic = [i for i in plan_items("widget", inputs.index, inputs.records, inputs.records_dir, scores)
                 if i.source == "synthetic"]
    assert [i.record.id for i in synthetic] == [r.id for n, r in enumerate(inputs.records) if n != 1]
    assert all(i.dropped_reason is None for i in synthetic)
    shown = [i for i in plan_items("widget", inputs.index, iter(inputs.records), inputs.records_dir, scores,
                                   with_dropped=True) if i.source == "synthetic"]
    dropped = inputs.records[1]
    assert [i.image_src.name for i in shown] == [Path(r.image_path).name for r in inputs.records]  # record order
    assert [(i.image_src, i.image_rel, i.dropped_reason) for i in shown if i.dropped_reason] == [
        (inputs.records_dir / dropped.image_path, "", "sharpness: low")]  # marked, no destination: never written


def test_bad_inputs_raise_with_the_culprit(inputs):
    with pytest.raises(AnogenError, match="no row in the filter scores"):
        list(plan_items("widget", inputs.index, inputs.records, inputs.records_dir, scores={}))
    with pytest.raises(AnogenError, match="appears twice"):
        list(plan_items("widget", [], inputs.records[:1] * 2, inputs.records_dir))
    with pytest.raises(AnogenError, match="belongs to category 'widget', not 'other'"):
        list(plan_items("other", inputs.index))
    anomaly = next(e for e in inputs.index if e.label == "anomaly")
    with pytest.raises(AnogenError, match="role 'train'"):
        list(plan_items("widget", [dataclasses.replace(anomaly, role="train")]))
    with pytest.raises(AnogenError, match="without a mask_path"):
        list(plan_items("widget", [dataclasses.replace(anomaly, mask_path=None)]))
