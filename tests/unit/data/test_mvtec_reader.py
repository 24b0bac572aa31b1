"""The MVTec AD reader: layout, variants from ../shared/data, synthetic train anomalies, bad input."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from anogen_data.data.image_io import read_image, read_mask, write_png
from anogen_data.data.mvtec import load_category
from anogen_data.errors import AnogenError


def _counts(samples):
    return Counter((s.split, s.defect_type) for s in samples)


def test_reads_layout_in_order_with_sizes(make_mvtec):
    root = make_mvtec(good=3, test_good=2, defects={"spot": 2, "crack": 3}, size=(40, 24))
    samples = load_category(root, "widget")
    assert _counts(samples) == {("train", "good"): 3, ("test", "good"): 2, ("test", "crack"): 3, ("test", "spot"): 2}
    names = [(s.split, s.defect_type, Path(s.path).name) for s in samples]
    assert names[:5] == [("train", "good", f"00{i}.png") for i in range(3)] + [("test", "good", f"00{i}.png") for i in range(2)]
    assert [n[1] for n in names[5:]] == ["crack"] * 3 + ["spot"] * 2
    assert all((s.width, s.height) == (40, 24) and Path(s.path).is_absolute() for s in samples)
    for s in samples:
        assert (s.label == "good") == (s.mask_path is None)
        if s.mask_path:
            assert Path(s.mask_path).name == Path(s.path).stem + "_mask.png"


def test_reads_variants_jpg_bmp_gray_16bit_and_stem_masks(tmp_path):
    cat = tmp_path / "var"
    for rel in ("train/good", "test/good", "test/dent", "ground_truth/dent"):
        (cat / rel).mkdir(parents=True)
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (30, 20), np.uint8)
    cv2.imwrite(str(cat / "train/good/a.jpg"), gray)
    cv2.imwrite(str(cat / "train/good/b.bmp"), cv2.merge([gray, gray, gray]))
    cv2.imwrite(str(cat / "test/dent/02.png"), gray)
    cv2.imwrite(str(cat / "ground_truth/dent/02_mask.PNG"), np.full((30, 20), 255, np.uint8))  # upper-case suffix
    cv2.imwrite(str(cat / "test/good/c.png"), (gray.astype(np.uint16) * 257))  # 16-bit gray
    cv2.imwrite(str(cat / "test/dent/01.jpg"), gray)
    mask = np.zeros((30, 20), np.uint8)
    mask[5:10, 5:10] = 200  # anti-aliased-style value above the 127 threshold
    mask[5:10, 10:12] = 100  # below: not defect
    cv2.imwrite(str(cat / "ground_truth/dent/01.png"), mask)  # <stem>.png, no _mask suffix
    samples = load_category(tmp_path, "var")
    assert _counts(samples) == {("train", "good"): 2, ("test", "good"): 1, ("test", "dent"): 2}
    assert all((s.width, s.height) == (20, 30) for s in samples)
    assert samples[-1].mask_path.endswith("02_mask.PNG")
    anomaly = samples[-2]
    assert anomaly.mask_path.endswith("ground_truth/dent/01.png")
    assert read_image(samples[2].path).dtype == np.uint8 and read_image(samples[2].path).shape == (30, 20, 3)
    m = read_mask(anomaly.mask_path)
    assert set(np.unique(m)) == {0, 255} and int((m == 255).sum()) == 25


def _version_with_synthetic_tree(make_mvtec, tmp_path) -> Path:
    """A version folder: mvtec/widget (2 good, 1 test good, 2 scratch) + synthetic/widget, two anomalies."""
    version = tmp_path / "v1"
    make_mvtec(good=2, test_good=1, defects={"scratch": 2}, root=version / "mvtec")
    mask = np.zeros((24, 32), np.uint8)
    mask[1:4, 1:4] = 255
    for tree in ("images", "masks"):
        (version / "synthetic/widget" / tree / "scratch").mkdir(parents=True)
    for name in ("real_000.png", "syn_000000.png"):
        write_png(version / "synthetic/widget/images/scratch" / name, np.full((24, 32, 3), 90, np.uint8))
        write_png(version / "synthetic/widget/masks/scratch" / name, mask)
    return version


def test_reads_both_trees_of_a_dataset_version(make_mvtec, tmp_path):
    version = _version_with_synthetic_tree(make_mvtec, tmp_path)
    samples = load_category(version, "widget")
    trained = [s for s in samples if s.split == "train" and s.label == "anomaly"]
    assert [Path(s.path).name for s in trained] == ["real_000.png", "syn_000000.png"]
    assert all(s.mask_path == s.path.replace("/images/", "/masks/") for s in trained)
    assert _counts(samples) == {("train", "good"): 2, ("test", "good"): 1, ("test", "scratch"): 2,
                                ("train", "scratch"): 2}
    assert _counts(load_category(version / "mvtec", "widget"))[("train", "scratch")] == 0  # MVTec tree alone


@pytest.mark.parametrize(
    "breakage, needle",
    [
        (lambda v: (v / "synthetic/widget/masks/scratch/syn_000000.png").unlink(),
         "syn_000000.png has no mask: expected .*/masks/scratch/syn_000000.png;"),
        (lambda v: (v / "synthetic/widget/images/scratch/real_000.png").unlink(),
         "real_000.png is a mask without an image"),
        (lambda v: (v / "synthetic/widget/images/scratch").rename(v / "synthetic/widget/images/dent"),
         "masks/scratch holds masks without images"),
    ],
    ids=["image-without-mask", "mask-without-image", "mask-folder-without-images"],
)
def test_bad_synthetic_tree_raises_naming_the_file(make_mvtec, tmp_path, breakage, needle):
    version = _version_with_synthetic_tree(make_mvtec, tmp_path)
    breakage(version)
    with pytest.raises(AnogenError, match=needle):
        load_category(version, "widget")


def test_reads_synthetic_training_anomalies_of_an_old_layout_version(make_mvtec):
    root = make_mvtec(good=2, test_good=1, defects={"scratch": 2})
    cat = root / "widget"
    (cat / "train/scratch").mkdir()
    image = np.full((24, 32, 3), 90, np.uint8)
    mask = np.zeros((24, 32), np.uint8)
    mask[1:4, 1:4] = 255
    for i in (1, 2):
        write_png(cat / f"train/scratch/syn_{i:06d}.png", image)
        write_png(cat / f"ground_truth/scratch/syn_{i:06d}_mask.png", mask)
    samples = load_category(root, "widget")
    syn = [s for s in samples if s.split == "train" and s.label == "anomaly"]
    assert [Path(s.path).name for s in syn] == ["syn_000001.png", "syn_000002.png"]
    assert all(s.defect_type == "scratch" and s.mask_path.endswith(Path(s.path).stem + "_mask.png") for s in syn)
    assert _counts(samples)[("test", "scratch")] == 2


def test_ignores_hidden_and_non_image_files(make_mvtec):
    root = make_mvtec(good=2, test_good=1, defects={"spot": 1})
    (root / "widget/train/good/.DS_Store").write_bytes(b"x")
    (root / "widget/train/good/notes.txt").write_text("hi")
    assert _counts(load_category(root, "widget"))[("train", "good")] == 2


@pytest.mark.parametrize(
    "breakage, needle",
    [
        (lambda c: (c / "test/spot/001.png").unlink(), "001_mask.png is a mask without an image"),
        (lambda c: (c / "ground_truth/spot/001_mask.png").unlink(), "001.png has no mask"),
        (lambda c: write_png(c / "ground_truth/spot/000_mask.png", np.zeros((10, 10), np.uint8)), "000_mask.png is 10x10"),
        (lambda c: (c / "test/good/000.png").write_bytes(b"not a png"), "000.png is not a readable image"),
        (lambda c: (c / "test/empty").mkdir(), "test/empty holds no images"),
        (lambda c: [p.unlink() for p in (c / "train/good").iterdir()], "train/good holds no images"),
    ],
    ids=["mask-without-image", "image-without-mask", "mask-size", "corrupt", "empty-defect", "no-train-good"],
)
def test_bad_category_raises_naming_the_file(make_mvtec, breakage, needle):
    root = make_mvtec(good=2, test_good=1, defects={"spot": 2})
    breakage(root / "widget")
    with pytest.raises(AnogenError, match=needle.replace(".", r"\.")):
        load_category(root, "widget")


def test_missing_root_category_and_bad_names(make_mvtec, tmp_path):
    root = make_mvtec()
    with pytest.raises(AnogenError, match="does not exist"):
        load_category(tmp_path / "nope", "widget")
    with pytest.raises(AnogenError, match="categories found in .*: widget"):
        load_category(root, "gadget")
    for bad in ("../widget", "a/b", "..", ""):
        with pytest.raises(AnogenError, match="not a plain folder name"):
            load_category(root, bad)


# The per-defect counts listed in ../shared/data/README.md.
SHARED = {
    "bottle": ("mvtec_bottle", 40, 20, {"broken_large": 20, "broken_small": 22, "contamination": 21}),
    "grid": ("mvtec_grid", 25, 3, {"bent": 3, "broken": 2, "glue": 2, "metal_contamination": 2, "thread": 2}),
    "hazelnut": ("hazelnut_toy", 28, 6, {"colour": 17}),
    "kolektorsdd": ("kolektorsdd", 30, 10, {"crack": 52}),
}


@pytest.mark.parametrize("category", sorted(SHARED))
def test_shared_real_data_counts(shared_data, category):
    folder, good, test_good, defects = SHARED[category]
    samples = load_category(shared_data / folder, category)
    expected = {("train", "good"): good, ("test", "good"): test_good}
    expected.update({("test", d): n for d, n in defects.items()})
    assert _counts(samples) == expected
    assert all(math.prod((s.width, s.height)) > 0 for s in samples)
    if category == "kolektorsdd":
        assert any(s.height != s.width for s in samples)
