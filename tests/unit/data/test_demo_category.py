"""The built-in demo category: deterministic bytes, exact masks on the part, MVTec layout, cached root."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from anogen_data.data.demo import demo_root, render_demo, render_image, render_pair
from anogen_data.data.image_io import read_image, read_mask
from anogen_data.data.mvtec import load_category
from anogen_data.files import sha256_file


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_arguments_same_bytes(tmp_path):
    kwargs = dict(size=48, n_good=3, n_test_good=1, defects=("scratch", "crack"), n_per_defect=2)
    a = _hashes(render_demo(tmp_path / "a", **kwargs))
    b = _hashes(render_demo(tmp_path / "b", **kwargs))
    assert a == b and len(a) == 3 + 1 + 2 * 2 * 2 + 1
    c = _hashes(render_demo(tmp_path / "c", seed=1, **kwargs))
    assert c["train/good/000.png"] != a["train/good/000.png"]


def test_read_back_by_the_reader(demo_data_root):
    samples = load_category(demo_data_root, "demo")
    counts = Counter((s.split, s.defect_type) for s in samples)
    assert counts == {("train", "good"): 12, ("test", "good"): 4, ("test", "scratch"): 4, ("test", "spot"): 4}
    assert {(s.width, s.height) for s in samples} == {(64, 64)}


def test_masks_are_exact_binary_and_on_the_part():
    for kind in ("scratch", "spot", "crack"):
        for number in range(4):
            good, image, mask = render_pair(7, kind, number, 96)
            assert np.array_equal(render_image(7, kind, number, 96)[0], image)
            assert image.shape == (96, 96, 3) and image.dtype == np.uint8
            assert mask.shape == (96, 96) and set(np.unique(mask)) == {0, 255}
            changed = np.any(image != good, axis=2)
            assert np.array_equal(changed, mask == 255)
            # the part is brighter than the background: defect pixels sit on it (its shading >= 100)
            assert good[mask == 255].mean() > 120 > good[:4, :4].mean()


def test_demo_root_renders_once_into_the_cache(tmp_path, monkeypatch):
    import anogen_data.data.demo as demo

    calls = []
    real = demo.render_demo
    monkeypatch.setattr(demo, "render_demo", lambda root: calls.append(root) or real(root, size=32, n_good=2,
                        n_test_good=1, n_per_defect=1))
    monkeypatch.setenv("ANOGEN_CACHE", str(tmp_path / "cache"))
    first = demo_root()
    second = demo_root()
    assert first == second and first.parent == tmp_path / "cache" and len(calls) == 1
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [first.name]  # no temp folder left
    assert read_image(first / "demo/test/spot/000.png").shape == (32, 32, 3)
    assert read_mask(first / "demo/ground_truth/spot/000_mask.png").max() == 255


def test_unwritable_cache_is_a_user_error(tmp_path):
    from anogen_data.errors import AnogenError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(AnogenError, match="set ANOGEN_CACHE to a writable folder"):
        demo_root(blocker / "cache")
