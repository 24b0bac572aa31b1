"""Box labels without a GPU: `export --box-labels` and `train --box-labels` turn pixel masks into their boxes;
`train --recipe/--textures` record what they used."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from anogen_data.data.image_io import read_mask, write_png
from synthetic_records import write_synthetic_records

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TRAIN_FAST = ["--epochs", "1", "--image-size", "64", "--width", "4"]


def _records(index: Path, folder: Path, n: int = 3) -> Path:
    """records.jsonl of n pixel-labelled anomalies: an L-shaped mask whose box is x 12..29, y 10..29."""
    mask = np.zeros((256, 256), np.uint8)
    mask[10:14, 12:30] = 255
    mask[10:30, 12:16] = 255
    write_synthetic_records(index, folder, mask, n, "paste", (0, 0, 64, 64))  # a loose layout box: the mask's bounds must win
    return folder / "records.jsonl"


@pytest.fixture
def versions(run_cli, demo_index, tmp_path):
    """(pixel version, box version) of the same three records."""
    records = _records(demo_index, tmp_path / "synth")
    for name, extra in (("pixel", []), ("box", ["--box-labels"])):
        code, _, err = run_cli("export", "--index", demo_index, "--records", records, "--out", tmp_path / "datasets",
                               "--name", name, *extra)
        assert code == 0, err
    return tmp_path / "datasets" / "pixel" / "v1", tmp_path / "datasets" / "box" / "v1"


def test_export_box_labels_writes_the_masks_boxes(versions):
    from pycocotools.coco import COCO

    pixel, box = versions
    masks = sorted((box / "synthetic" / "demo" / "masks" / "scratch").glob("syn_*.png"))
    assert len(masks) == 3
    expected = np.zeros((64, 64), np.uint8)
    expected[10:30, 12:30] = 255
    for path in masks:
        assert np.array_equal(read_mask(path), expected)  # the filled box of the L, not the loose layout box
        assert not np.array_equal(read_mask(pixel / path.relative_to(box)), expected)  # pixel version keeps the L
    coco = COCO(str(box / "coco" / "instances_train.json"))
    synthetic = [a for a in coco.dataset["annotations"] if "syn_" in coco.imgs[a["image_id"]]["file_name"]]
    assert len(synthetic) == 3 and all(a["mask_quality"] == "box" for a in synthetic)
    assert all(a["bbox"] == [12, 10, 18, 20] for a in synthetic)
    manifest = json.loads((box / "manifest.json").read_text())
    assert manifest["lineage"]["box_labels"] is True


def test_train_box_labels_on_a_pixel_version_and_on_the_box_version(run_cli, versions, tmp_path):
    pixel, box = versions
    seen = {}
    for name, version, extra in (("pixel", pixel, []), ("pixel-as-box", pixel, ["--box-labels"]), ("box", box, [])):
        code, _, err = run_cli("train", version, "--recipe", "unet", *TRAIN_FAST, *extra, "--out", tmp_path / name)
        assert code == 0, err
        meta = json.loads((tmp_path / name / "model.json").read_text())
        seen[name] = meta["dataset"]["n_box_labels"], meta["dataset"]["n_anomalies"]
        assert meta["recipe"]["name"] == "unet" and meta["textures"]["source"] == "in-category"
    assert seen["pixel"][0] == 0 and seen["pixel-as-box"][0] == seen["pixel-as-box"][1] > 0
    assert seen["box"][0] >= 3  # the synthetic records arrive as box labels from COCO


def test_train_recipe_with_textures_and_bad_inputs(run_cli, versions, tmp_path):
    pixel, _ = versions
    (tmp_path / "dtd" / "banded").mkdir(parents=True)
    write_png(tmp_path / "dtd" / "banded" / "banded_0001.png", np.full((48, 40, 3), 90, np.uint8))
    code, _, err = run_cli("train", pixel, "--recipe", "draem", "--textures", tmp_path / "dtd", *TRAIN_FAST,
                           "--out", tmp_path / "m")
    assert code == 0, err
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["model"] == "draem" and meta["recipe"]["mix"] == ["perlin", "clean", "generated", "clean"]
    assert meta["textures"]["source"] == "folder" and meta["textures"]["n_files"] == 1
    (tmp_path / "empty").mkdir()
    for args, needle in (
        (["--textures", tmp_path / "empty"], "holds no image files"),
        (["--textures", tmp_path / "nope"], "is not a folder"),
        (["--recipe", "draem", "--model", "unet"], "--recipe draem trains the draem detector"),
    ):
        code, _, err = run_cli("train", pixel, *args, *TRAIN_FAST, "--out", tmp_path / "bad")
        assert code == 1 and needle in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "bad").exists()
    code, _, err = run_cli("train", pixel, "--recipe", "patchcore", *TRAIN_FAST, "--out", tmp_path / "bad")
    assert code != 0 and "patchcore" in err and not (tmp_path / "bad").exists()
