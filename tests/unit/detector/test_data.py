"""Version reader, letterbox canvas and the good/synthetic mix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from anogen_data.data.image_io import write_png
from anogen_data.detector.augment import cutpaste_anomaly, perlin_anomaly, perlin_noise
from anogen_data.detector.recipes import RECIPES
from anogen_data.detector.data import DetectorTrainSet, canvas_for, letterbox, read_version
from anogen_data.errors import AnogenError


@pytest.fixture(params=["synthetic-tree", "old-train-folders"])
def tiny_version(tmp_path, request):
    """A hand-written version: 3 good, one box-labelled and one pixel-labelled synthetic anomaly (64x32),
    in the current layout (``synthetic/widget/{images,masks}/scratch/``) or the one written before it
    (``mvtec/widget/train/scratch`` + ``ground_truth/scratch/<stem>_mask.png``), which still reads."""
    version = tmp_path / "v1"
    cat = version / "mvtec" / "widget"
    rng = np.random.default_rng(0)
    if request.param == "synthetic-tree":
        image_dir, mask_dir, mask_name = "synthetic/widget/images/scratch", "synthetic/widget/masks/scratch", "{}.png"
    else:
        image_dir, mask_dir, mask_name = "mvtec/widget/train/scratch", "mvtec/widget/ground_truth/scratch", "{}_mask.png"
    for folder in (cat / "train/good", version / image_dir, version / mask_dir):
        folder.mkdir(parents=True)
    for i in range(3):
        write_png(cat / "train" / "good" / f"{i:03d}.png", rng.integers(0, 256, (32, 64, 3), np.uint8))
    source = tmp_path / "source.png"
    write_png(source, np.zeros((32, 64, 3), np.uint8))
    images = []
    for k, (stem, quality) in enumerate([("syn_000000", "box"), ("syn_000001", "pixel")]):
        write_png(version / image_dir / f"{stem}.png", np.full((32, 64, 3), 200, np.uint8))
        mask = np.zeros((32, 64), np.uint8)
        mask[4:12, 8:24] = 255
        write_png(version / mask_dir / mask_name.format(stem), mask)
        images.append({"id": k, "file_name": f"{image_dir}/{stem}.png", "width": 64, "height": 32})
    anns = [{"id": k, "image_id": k, "bbox": [8, 4, 16, 8], "mask_quality": q} for k, q in enumerate(["box", "pixel"])]
    (version / "coco").mkdir()
    (version / "coco" / "instances_train.json").write_text(json.dumps({"images": images, "annotations": anns}))
    rec = {"id": "syn_000000", "category": "widget", "defect_type": "scratch", "backend": "paste", "seed": 0,
           "source_path": str(source), "image_path": f"{image_dir}/syn_000000.png",
           "mask_path": f"{mask_dir}/" + mask_name.format("syn_000000"), "mask_quality": "box",
           "bbox_xyxy": [8, 4, 24, 12]}
    (version / "records.jsonl").write_text(json.dumps(rec) + "\n")
    (version / "manifest.json").write_text("{}")
    return version


def test_read_version_labels_quality_and_clean_source(tiny_version):
    category, good, anomalies = read_version(tiny_version)
    assert category == "widget" and len(good) == 3 and len(anomalies) == 2
    by_stem = {a.image.rsplit("/", 1)[-1]: a for a in anomalies}
    assert by_stem["syn_000000.png"].mask_quality == "box" and by_stem["syn_000000.png"].clean.endswith("source.png")
    assert by_stem["syn_000001.png"].mask_quality == "pixel" and by_stem["syn_000001.png"].clean is None
    assert all(Path(a.mask).name.startswith(Path(a.image).stem) for a in anomalies)


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


def test_augment_flips_the_version_anomaly_and_its_target_together(tiny_version):
    _, good, anomalies = read_version(tiny_version)
    box_only = [a for a in anomalies if a.mask_quality == "box"]
    # a non-symmetric anomaly image, so a flip of the image shows in its pixels
    image = np.zeros((32, 64, 3), np.uint8)
    image[4:12, 8:24] = 200
    image[4, 8] = 255  # the box's top-left corner marked
    write_png(box_only[0].image, image)
    plain = DetectorTrainSet(good, box_only, (32, 64), mix=("clean", "generated"), length=24, seed=0)
    flipped = DetectorTrainSet(good, box_only, (32, 64), mix=("clean", "generated"), length=24, seed=0, augment=True)
    seen = set()
    for i in range(1, 24, 2):  # the synthetic half
        a, b = plain[i], flipped[i]
        assert torch.equal(a["image"], plain[i]["image"]) and torch.equal(b["image"], flipped[i]["image"])
        ys, xs = torch.nonzero(a["target"][0], as_tuple=True)
        assert (ys.min(), ys.max(), xs.min(), xs.max()) == (4, 11, 8, 23)  # never flipped without augment
        ys, xs = torch.nonzero(b["target"][0], as_tuple=True)
        box = (int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max()))
        vertical, horizontal = box[0] != 4, box[2] != 8
        assert box == ((20, 27) if vertical else (4, 11)) + ((40, 55) if horizontal else (8, 23))
        corner = (27 if vertical else 4, 55 if horizontal else 8)
        assert float(b["image"][0, corner[0], corner[1]]) == 1.0  # the marked pixel moved with the target
        seen.add((vertical, horizontal))
    assert len(seen) >= 3  # several flip states occur across samples


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
