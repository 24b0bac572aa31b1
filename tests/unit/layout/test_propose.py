"""Layout proposal on the tiny demo category: counts, masks inside boxes and the foreground, seeds."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from anogen_data.data.image_io import read_image
from anogen_data.errors import AnogenError
from anogen_data.layout.foreground import foreground_mask
from anogen_data.layout.propose import EDGE_MARGIN, LayoutProposer, propose_layouts
from anogen_data.layout.rle import decode_rle, mask_bbox
from anogen_data.records import read_index


@pytest.fixture(scope="module")
def entries(demo_index):
    return read_index(demo_index)


@pytest.fixture(scope="module")
def layouts(entries):
    return list(propose_layouts(entries, 12, category="demo", seed=3))


def test_layouts_split_over_defects_with_masks_inside_boxes(layouts, entries):
    assert [x.id for x in layouts] == [f"syn_{i:06d}" for i in range(12)]
    assert {x.defect_type for x in layouts} == {"scratch", "spot"}
    assert sum(x.defect_type == "spot" for x in layouts) == 6  # 2 learn shots each -> half each
    goods = {e.path for e in entries if e.role == "train"}
    for layout in layouts:
        assert layout.source_path in goods and (layout.shape_source, layout.placement) == ("real", "polar")  # demo washer: an object
        mask = decode_rle(layout.mask_rle)
        assert mask.shape == (64, 64) and mask.any()
        x0, y0, x1, y1 = layout.bbox_xyxy
        mx0, my0, mx1, my1 = mask_bbox(mask)
        assert x0 <= mx0 and y0 <= my0 and mx1 <= x1 and my1 <= y1
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64


def test_masks_fall_inside_the_foreground_of_object_categories(layouts, entries):
    proposer = LayoutProposer(entries)
    for layout in layouts:
        foreground = proposer.foreground_of(layout.source_path, (64, 64))
        mask = decode_rle(layout.mask_rle)
        assert not (foreground[mask > 0] == 0).any()


def test_defects_keep_a_margin_off_the_object_edge(layouts, entries):
    proposer = LayoutProposer(entries)
    proposer.foreground_of(layouts[0].source_path, (64, 64))  # fits the background model
    assert not proposer._model.texture  # the demo is an object category
    for layout in layouts:
        obj = foreground_mask(read_image(layout.source_path), proposer._model)  # the object, not eroded
        inside = cv2.distanceTransform((obj > 0).astype(np.uint8), cv2.DIST_L2, 5)  # px to the background
        mask = decode_rle(layout.mask_rle)
        assert inside[mask > 0].min() >= EDGE_MARGIN * 64 - 1.5  # 1.5: the 256 px cache's rounding



def test_same_seed_same_layouts_and_each_layout_independent_of_n(entries, layouts):
    again = list(propose_layouts(entries, 12, category="demo", seed=3))
    assert again == layouts
    other = list(propose_layouts(entries, 12, category="demo", seed=4))
    assert [x.mask_rle for x in other] != [x.mask_rle for x in layouts]


@pytest.mark.parametrize("shape", ["perlin", "stroke", "mixed"])
def test_synthetic_shapes_when_asked(entries, shape):
    layouts = list(propose_layouts(entries, 4, category="demo", seed=0, shape=shape, defect="spot"))
    assert all(x.defect_type == "spot" for x in layouts)
    assert all(x.shape_source in ("perlin", "stroke") for x in layouts)
    assert all(decode_rle(x.mask_rle).any() for x in layouts)


def test_category_without_anomalies_gets_synthetic_defects(entries):
    goods_only = [e for e in entries if e.role == "train"]
    layouts = list(propose_layouts(goods_only, 3, category="demo"))
    assert {x.defect_type for x in layouts} == {"synthetic"}
    assert all(x.shape_source in ("perlin", "stroke") for x in layouts)


def test_bad_requests_raise(entries):
    with pytest.raises(AnogenError, match="at least 1"):
        list(propose_layouts(entries, 0, category="demo"))
    with pytest.raises(AnogenError, match="'dent'.*scratch, spot"):
        list(propose_layouts(entries, 2, category="demo", defect="dent"))
    with pytest.raises(AnogenError, match="unknown foreground 'half'"):
        LayoutProposer(entries, foreground="half")
    with pytest.raises(AnogenError, match="unknown shape"):
        LayoutProposer(entries, shape="star")
    with pytest.raises(AnogenError, match="no role 'train'"):
        LayoutProposer([e for e in entries if e.role != "train"])


@pytest.mark.slow  # decodes the whole bottle category (~12 s)
def test_real_data_bottle_masks_on_the_bottle(shared_data):
    from anogen_data.data.mvtec import load_category
    from anogen_data.data.split import build_index

    entries = build_index(load_category(shared_data / "mvtec_bottle", "bottle"), category="bottle")
    proposer = LayoutProposer(entries)
    for number in range(3):
        layout = proposer.propose(number, "contamination", 0, "bottle")
        mask = decode_rle(layout.mask_rle)
        assert mask.shape == (900, 900) and mask.any()
        assert not (proposer.foreground_of(layout.source_path, (900, 900))[mask > 0] == 0).any()
        assert np.count_nonzero(mask) < 0.5 * mask.size


@pytest.mark.parametrize("old, placement", [("real:/m/a_mask.png", "free"), ("real-polar:/m/a_mask.png", "polar")])
def test_old_packed_shape_source_is_read_as_structured_fields(tmp_path, layouts, old, placement):
    from anogen_data.records import read_layouts, to_row, write_layouts

    row = {k: v for k, v in to_row(layouts[0]).items() if k not in ("shot_mask", "placement")}
    (tmp_path / "old.jsonl").write_text(json.dumps({**row, "shape_source": old}) + "\n"
                                        + json.dumps({**row, "id": "syn_000001", "shape_source": "perlin"}) + "\n")
    real, synthetic = read_layouts(tmp_path / "old.jsonl")
    assert (real.shape_source, real.shot_mask, real.placement) == ("real", "/m/a_mask.png", placement)
    assert (synthetic.shape_source, synthetic.shot_mask, synthetic.placement) == ("perlin", None, None)
    write_layouts(tmp_path / "new.jsonl", [real])
    assert read_layouts(tmp_path / "new.jsonl") == [real]
