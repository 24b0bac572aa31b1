"""The quality stage on a tiny hand-made version: structure, hand-checkable agreement, determinism."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from anogen_data.config import QualityConfig
from anogen_data.data.image_io import write_png
from anogen_data.errors import AnogenError
from anogen_data.files import write_jsonl
from anogen_data.records import IndexEntry, SynthRecord, to_row, write_index

SIZE = 48


def _disk(seed):
    rng = np.random.default_rng(seed)
    image = np.full((SIZE, SIZE, 3), 30, np.uint8)
    cv2.circle(image, (24, 24), 18, (200, 190, 170), -1)
    return np.clip(image.astype(int) + rng.integers(-5, 6, image.shape), 0, 255).astype(np.uint8)


def _spot(image, cx, cy, colour=(60, 40, 30)):
    mask = np.zeros((SIZE, SIZE), np.uint8)
    cv2.circle(mask, (cx, cy), 5, 255, -1)
    out = image.copy()
    out[mask > 0] = colour
    return out, mask


@pytest.fixture(scope="module")
def version(tmp_path_factory):
    """A version folder with 4 generated "spot" records (one mislabelled) and an index with 3 eval spots."""
    root = tmp_path_factory.mktemp("quality")
    category = root / "data" / "toy"  # MVTec layout: the index only names images inside it
    for sub in ("train/good", "test/spot", "ground_truth/spot"):
        (category / sub).mkdir(parents=True)
    source = category / "train" / "good" / "good.png"
    write_png(source, _disk(0))
    entries = [IndexEntry(str(source), "train", "good", "good", None, SIZE, SIZE, "train", "toy")]
    for i in range(3):
        image, mask = _spot(_disk(10 + i), 18 + 4 * i, 22)
        shot, shot_mask = category / "test" / "spot" / f"eval{i}.png", category / "ground_truth" / "spot" / f"eval{i}_mask.png"
        write_png(shot, image)
        write_png(shot_mask, mask)
        entries.append(IndexEntry(str(shot), "test", "anomaly", "spot", str(shot_mask), SIZE, SIZE, "eval", "toy"))
    write_index(root / "index.jsonl", entries)
    version = root / "v1"
    (version / "train" / "spot").mkdir(parents=True)
    records = []
    for i, (cx, cy) in enumerate([(20, 20), (28, 26), (24, 30), (16, 28)]):
        image, mask = _spot(_disk(0), cx, cy, colour=(60 + 20 * i, 40, 30))
        if i == 3:
            mask = np.roll(mask, 12, axis=1)  # mislabelled: the mask misses the spot
        write_png(version / "train/spot" / f"syn_{i}.png", image)
        write_png(version / "train/spot" / f"syn_{i}_mask.png", mask)
        records.append(SynthRecord(f"syn_{i}", "toy", "spot", "paste", i, str(source), f"train/spot/syn_{i}.png",
                                   f"train/spot/syn_{i}_mask.png", "pixel", (cx - 5, cy - 5, cx + 6, cy + 6)))
    write_jsonl(version / "records.jsonl", (to_row(r) for r in records))
    return version, root / "index.jsonl"


def test_quality_json_per_defect_type(version, tmp_path):
    from anogen_data.stages.quality import run_quality

    out = tmp_path / "metrics" / "quality.json"
    report = run_quality(QualityConfig(kid_subsets=5), version[0], version[1], out, progress=False)
    numbers, info = json.loads(out.read_text()), json.loads((out.parent / "quality.info.json").read_text())
    assert {**numbers, **info} == json.loads(json.dumps(report))
    assert set(info) == {"backbone", "config", "version"} and "backbone" not in numbers  # a metric holds numbers only
    spot = report["per_defect"]["spot"]
    assert spot["n_generated"] == 4 and spot["n_real_eval"] == 3
    assert spot["kid_effnetlite0_image"]["subset_size"] == 3
    assert 0.0 < spot["diversity_effnetlite0_defect"] < 1.0
    # three exact masks (IoU 1) and one that misses its spot entirely (IoU 0)
    assert spot["mask_change_iou"]["max"] == 1.0 and spot["mask_change_iou"]["min"] == 0.0
    assert spot["mask_change_iou"]["mean"] == pytest.approx(0.75)
    assert report["all"]["n_generated"] == 4
    run_quality(QualityConfig(kid_subsets=5), version[0], version[1], tmp_path / "q2.json", progress=False)
    assert (tmp_path / "q2.json").read_bytes() == out.read_bytes()


def test_missing_records_is_a_clear_error(version, tmp_path):
    from anogen_data.stages.quality import run_quality

    with pytest.raises(AnogenError, match="records.jsonl does not exist"):
        run_quality(QualityConfig(), tmp_path, version[1], tmp_path / "q.json", progress=False)
    assert not (tmp_path / "q.json").exists()


def test_mask_agreement_skips_whole_image_backends_with_a_reason(version, tmp_path):
    """DualAnoDiff renders the whole image: its change map against the source is everywhere, so its
    records are left out of mask_change_iou / mask_leakage and quality.json says why."""
    import shutil

    from anogen_data.records import read_records
    from anogen_data.stages.quality import run_quality

    copy = tmp_path / "v1"
    shutil.copytree(version[0], copy)
    rows = []
    for record in read_records(copy / "records.jsonl"):
        row = to_row(record)
        if record.id in ("syn_1", "syn_3"):  # one exact mask, the mislabelled one
            row["backend"] = "dualanodiff"
        rows.append(row)
    write_jsonl(copy / "records.jsonl", rows)
    report = run_quality(QualityConfig(kid_subsets=5), copy, version[1], tmp_path / "q.json", progress=False)
    spot = report["per_defect"]["spot"]
    assert spot["n_generated"] == 4  # still measured for KID and diversity
    assert spot["mask_change_iou"]["n"] == 2 and spot["mask_change_iou"]["min"] == 1.0
    skipped = report["mask_agreement_skipped"]
    assert skipped["n"] == 2 and skipped["backends"] == ["dualanodiff"] and "whole image" in skipped["reason"]
    plain = run_quality(QualityConfig(kid_subsets=5), version[0], version[1], tmp_path / "p.json", progress=False)
    assert "mask_agreement_skipped" not in plain
