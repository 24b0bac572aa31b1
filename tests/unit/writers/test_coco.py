"""COCO files: re-read by pycocotools, RLE equal to the masks written, COCOeval of GT vs itself = 1.0."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from anogen_data.data.image_io import read_mask
from anogen_data.writers.coco import mask_instances
from anogen_data.writers.mvtec import mask_of, split_files


def _coco(path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def test_mask_instances_splits_connected_regions():
    mask = np.zeros((20, 30), np.uint8)
    mask[2:5, 3:9] = 255  # 3 x 6 = 18 px
    mask[10:18, 20:22] = 255  # 8 x 2 = 16 px
    mask[12, 22] = 255  # right next to the second region: same instance, box one pixel wider
    instances = mask_instances(mask)
    assert [i.bbox_xywh for i in instances] == [(3, 2, 6, 3), (20, 10, 3, 8)]
    assert [i.area for i in instances] == [18, 17]
    union = sum(mask_utils.decode({**i.rle, "counts": i.rle["counts"].encode()}) for i in instances)
    np.testing.assert_array_equal(union * 255, mask)
    assert all(isinstance(i.rle["counts"], str) for i in instances)
    assert mask_instances(np.zeros((4, 4), np.uint8)) == []


def test_diagonal_pixels_are_one_instance():
    mask = np.zeros((6, 6), np.uint8)
    mask[1, 1] = mask[2, 2] = 255
    assert len(mask_instances(mask)) == 1


@pytest.mark.parametrize("split", ["train", "test"])
def test_coco_round_trip_matches_masks_written(written, split):
    folder = written.folder
    coco = _coco(folder / "coco" / f"instances_{split}.json")
    raw = json.loads((folder / "coco" / f"instances_{split}.json").read_text())
    assert {"info", "licenses", "images", "annotations", "categories"} <= set(raw)
    assert [c["name"] for c in raw["categories"]] == ["dent", "scratch"]
    assert [c["id"] for c in raw["categories"]] == [1, 2]
    files = split_files(folder, "widget", split)
    assert len(coco.getImgIds()) == len(files)
    for image in coco.loadImgs(coco.getImgIds()):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
        assert all(a["iscrowd"] == 0 and isinstance(a["segmentation"]["counts"], str) for a in anns)
        if "/good/" in image["file_name"]:
            assert anns == []
            continue
        written_mask = read_mask(folder / mask_of(image["file_name"]))
        decoded = np.zeros_like(written_mask)
        for a in anns:
            decoded |= coco.annToMask(a).astype(np.uint8) * 255
            x, y, w, h = a["bbox"]
            ys, xs = np.nonzero(coco.annToMask(a))
            assert (x, y, w, h) == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
            assert a["area"] == int(coco.annToMask(a).sum())
        np.testing.assert_array_equal(decoded, written_mask)


def test_box_labels_are_filled_boxes_and_marked(written):
    coco = _coco(written.folder / "coco" / "instances_train.json")
    box_records = [r for r in written.inputs.records if r.mask_quality == "box"]
    assert box_records
    box_anns = [a for a in coco.dataset["annotations"] if a["mask_quality"] == "box"]
    assert len(box_anns) == len(box_records)
    x0, y0, x1, y1 = box_records[0].bbox_xyxy
    assert box_anns[0]["bbox"] == [x0, y0, x1 - x0, y1 - y0]
    assert box_anns[0]["area"] == (x1 - x0) * (y1 - y0)


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_cocoeval_ground_truth_against_itself_is_perfect(written, iou_type):
    gt = _coco(written.folder / "coco" / "instances_test.json")
    detections = [{**a, "score": 1.0} for a in gt.dataset["annotations"]]
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(detections)
        evaluator = COCOeval(gt, dt, iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    assert evaluator.stats[0] == pytest.approx(1.0)  # AP@[.5:.95]
    assert evaluator.stats[1] == pytest.approx(1.0)  # AP@.5
