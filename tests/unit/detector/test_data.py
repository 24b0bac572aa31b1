"""Version reader, letterbox canvas and the good/synthetic mix."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from anogen_data.data.image_io import write_png
from anogen_data.detector.augment import cutpaste_anomaly, perlin_anomaly, perlin_noise
from anogen_data.detector.recipes import RECIPES
from anogen_data.detector.data import DetectorTrainSet, canvas_for, letterbox, read_version
from anogen_data.errors import AnogenError


@pytest.fixture
def tiny_version(tmp_path):
    """A hand-written version: 3 good, one box-labelled and one pixel-labelled synthetic anomaly (64x32)."""
    version = tmp_path / "v1"
    cat = version / "mvtec" / "widget"
    rng = np.random.default_rng(0)
    for folder in ("train/good", "train/scratch", "ground_truth/scratch"):
        (cat / folder).mkdir(parents=True)
    for i in range(3):
        write_png(cat / "train" / "good" / f"{i:03d}.png", rng.integers(0, 256, (32, 64, 3), np.uint8))
    source = tmp_path / "source.png"
    write_png(source, np.zeros((32, 64, 3), np.uint8))
    images = []
    for k, (stem, quality) in enumerate([("syn_000000", "box"), ("syn_000001", "pixel")]):
        write_png(cat / "train" / "scratch" / f"{stem}.png", np.full((32, 64, 3), 200, np.uint8))
        mask = np.zeros((32, 64), np.uint8)
        mask[4:12, 8:24] = 255
        write_png(cat / "ground_truth" / "scratch" / f"{stem}_mask.png", mask)
        images.append({"id": k, "file_name": f"mvtec/widget/train/scratch/{stem}.png", "width": 64, "height": 32})
    anns = [{"id": k, "image_id": k, "bbox": [8, 4, 16, 8], "mask_quality": q} for k, q in enumerate(["box", "pixel"])]
    (version / "coco").mkdir()
    (version / "coco" / "instances_train.json").write_text(json.dumps({"images": images, "annotations": anns}))
    rec = {"id": "syn_000000", "image_path": "mvtec/widget/train/scratch/syn_000000.png", "source_path": str(source)}
    (version / "records.jsonl").write_text(json.dumps(rec) + "\n")
    (version / "manifest.json").write_text("{}")
    return version


def test_read_version_labels_quality_and_clean_source(tiny_version):
    category, good, anomalies = read_version(tiny_version)
    assert category == "widget" and len(good) == 3 and len(anomalies) == 2
    by_stem = {a.image.rsplit("/", 1)[-1]: a for a in anomalies}
    assert by_stem["syn_000000.png"].mask_quality == "box" and by_stem["syn_000000.png"].clean.endswith("source.png")
    assert by_stem["syn_000001.png"].mask_quality == "pixel" and by_stem["syn_000001.png"].clean is None


def test_read_version_refuses_a_folder_without_mvtec(tmp_path):
    with pytest.raises(AnogenError, match="no mvtec/ folder"):
        read_version(tmp_path)


def test_canvas_never_squashes_non_square_images():
    assert canvas_for(500, 1250, 256) == (256, 128)  # KolektorSDD: tall, short side rounded up to 32
    assert canvas_for(900, 900, 256) == (256, 256)
    image = np.zeros((1250, 500, 3), np.uint8)
    out, content = letterbox(image, (256, 128))
    assert out.shape == (256, 128, 3)
    assert abs(content[0] / content[1] - 1250 / 500) < 0.02  # aspect kept
    mask = np.zeros((1250, 500), np.uint8)
    mask[600:700, 200:300] = 255
    boxed, _ = letterbox(mask, (256, 128), nearest=True)
    assert set(np.unique(boxed)) == {0, 255}


def test_half_mix_alternates_good_and_synthetic_with_box_targets(tiny_version):
    _, good, anomalies = read_version(tiny_version)
    box_only = [a for a in anomalies if a.mask_quality == "box"]
    data = DetectorTrainSet(good, box_only, (32, 64), mix=("clean", "generated"), length=6, seed=0)
    for i in range(6):
        sample = data[i]
        assert sample["image"].shape == (3, 32, 64) and sample["target"].shape == (1, 32, 64)
        if i % 2 == 0:
            assert sample["target"].sum() == 0 and not sample["is_box"]
        else:
            assert sample["is_box"] and sample["has_clean"]
            ys, xs = torch.nonzero(sample["target"][0], as_tuple=True)
            assert (ys.min(), ys.max(), xs.min(), xs.max()) == (4, 11, 8, 23)  # the filled box
            assert sample["clean"].max() == 0  # the recorded clean source (black), not a random good image


def test_samples_are_pure_functions_of_seed_epoch_index(tiny_version):
    _, good, anomalies = read_version(tiny_version)
    a = DetectorTrainSet(good, anomalies, (32, 64), mix=RECIPES["draem"].mix, length=8, seed=1)
    b = DetectorTrainSet(good, anomalies, (32, 64), mix=RECIPES["draem"].mix, length=8, seed=1)
    for i in reversed(range(8)):  # order does not matter
        assert torch.equal(a[i]["image"], b[i]["image"])
    a.set_epoch(1)
    assert any(not torch.equal(a[i]["image"], b[i]["image"]) for i in range(8))


def test_on_the_fly_anomalies_change_pixels_only_inside_the_mask():
    rng = np.random.default_rng(0)
    image = rng.random((64, 48, 3)).astype(np.float32)
    texture = rng.random((64, 48, 3)).astype(np.float32)
    for out, mask in (perlin_anomaly(image, texture, np.random.default_rng(1)), cutpaste_anomaly(image, np.random.default_rng(2))):
        assert mask.sum() > 0 and set(np.unique(mask)) <= {0.0, 1.0}
        assert np.array_equal(out[mask == 0], image[mask == 0])
    noise = perlin_noise((30, 50), (4, 4), np.random.default_rng(0))
    assert noise.shape == (30, 50) and np.abs(noise).max() <= 1.5


def test_box_target_is_one_box_per_defect_not_one_around_all():
    mask = np.zeros((40, 60), np.float32)
    mask[2:6, 3:9] = 1  # two defects far apart ...
    mask[30:35, 50:56] = 1
    mask[31, 50] = 0
    box = DetectorTrainSet._box_target(mask)
    expected = np.zeros_like(mask)
    expected[2:6, 3:9] = 1
    expected[30:35, 50:56] = 1
    assert np.array_equal(box, expected)  # ... keep their own boxes; the grid between stays normal
    assert np.array_equal(DetectorTrainSet._box_target(expected), expected)  # a filled box stays itself
