"""The hard demo variants (dark on dark, light on light, low-contrast texture): deterministic bytes, exact
defect masks on the part, exact foreground truth, MVTec layout through the index, the washer untouched."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pytest

from anogen_data.data.demo import render_demo
from anogen_data.data.demo_variants import VARIANTS, render_variant, render_variant_pair
from anogen_data.data.mvtec import load_category


def test_plain_demo_bytes_unchanged(tmp_path):
    folder = render_demo(tmp_path, size=48, n_good=3, n_test_good=1, defects=("scratch", "spot", "crack"), n_per_defect=2)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    # the washer's files as rendered before the variants existed (other tests and caches rely on them)
    assert digest.hexdigest() == "49749176e6d1e22d76bf9ac8ac882f29d5c33a6695c75f22d192f6b2f148c5f7"


@pytest.mark.parametrize("category", VARIANTS)
def test_same_arguments_same_bytes_and_exact_truth(category):
    image, mask, truth = render_variant(category, 3, "spot", 1, 96)
    again = render_variant(category, 3, "spot", 1, 96)
    assert all(np.array_equal(a, b) for a, b in zip((image, mask, truth), again))
    assert image.shape == (96, 96, 3) and image.dtype == np.uint8
    assert mask.dtype == truth.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
    assert set(np.unique(truth)) <= {0, 255} and not (mask[truth == 0] > 0).any()  # defects only on the part
    clean, defective, _, _ = render_variant_pair(category, 3, "spot", 1, 96)
    assert np.array_equal(defective, image)
    assert np.array_equal(np.any(clean != image, axis=2), mask == 255)  # the defect is exactly its mask
    assert render_variant(category, 3, "good", 1, 96)[1] is None
    if category == "demo-texture":
        assert (truth == 255).all()
    else:
        assert 0.1 < (truth > 0).mean() < 0.6


@pytest.mark.parametrize("category, contrast", [("demo-dark", 20.0), ("demo-light", 20.0)])
def test_low_contrast_is_low(category, contrast):
    """The part's mean grey differs from the background's by less than ``contrast`` (of 255): hard on purpose."""
    image, _, truth = render_variant(category, 0, "good", 0)
    grey = image.mean(axis=2)
    assert abs(grey[truth > 0].mean() - grey[truth == 0].mean()) < contrast


def test_variant_renders_in_mvtec_layout_and_reads_back(tmp_path):
    render_demo(tmp_path, category="demo-dark", size=64, n_good=2, n_test_good=1, defects=("crack",), n_per_defect=2)
    samples = load_category(tmp_path, "demo-dark")
    assert Counter((s.split, s.defect_type) for s in samples) == {("train", "good"): 2, ("test", "good"): 1, ("test", "crack"): 2}


def test_index_renders_a_variant_without_data(tmp_path, monkeypatch):
    from anogen_data.config import IndexConfig
    from anogen_data.stages.index import resolve_data_root

    monkeypatch.setenv("ANOGEN_CACHE", str(tmp_path / "cache"))
    import anogen_data.data.demo as demo

    real = demo.render_demo
    monkeypatch.setattr(demo, "render_demo", lambda root, category: real(root, category=category, size=32, n_good=2,
                        n_test_good=1, n_per_defect=1))
    root = resolve_data_root(IndexConfig(category="demo-light"))
    assert root == tmp_path / "cache" / "demo-light-v1" and (root / "demo-light" / "train" / "good" / "001.png").is_file()
