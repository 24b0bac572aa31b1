"""Foreground estimation: objects on a plain background vs textures, on synthetic and real images."""

from __future__ import annotations

import numpy as np
import pytest

from anogen_data.data.image_io import read_image
from anogen_data.layout.foreground import estimate_foreground, fit_background, foreground_mask


def _object_images(n=4, size=96):
    """Bright discs at shifting positions on a noisy dark background, and their true masks."""
    rng = np.random.default_rng(0)
    images, truths = [], []
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        image = rng.normal(40, 6, (size, size, 3)).clip(0, 255).astype(np.uint8)
        cy, cx = 44 + 2 * i, 50 - 2 * i
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= 28**2
        image[disc] = (200, 180, 150)
        images.append(image)
        truths.append(disc)
    return images, truths


def _iou(a, b):
    return np.logical_and(a, b).sum() / np.logical_or(a, b).sum()


def test_object_foreground_matches_the_object():
    images, truths = _object_images()
    masks = estimate_foreground(images)
    for mask, truth in zip(masks, truths):
        assert mask.dtype == np.uint8 and mask.shape == truth.shape and set(np.unique(mask)) <= {0, 255}
        assert _iou(mask > 0, truth) > 0.9


def test_texture_and_full_mode_give_the_whole_image():
    rng = np.random.default_rng(1)
    textures = [rng.integers(0, 256, (64, 80, 3), np.uint8) for _ in range(3)]
    model = fit_background(textures)
    assert model.texture
    assert (foreground_mask(textures[0], model) == 255).all()
    images, _ = _object_images(2)
    assert (estimate_foreground(images, mode="full")[0] == 255).all()


def test_unknown_mode_raises():
    from anogen_data.errors import AnogenError

    images, _ = _object_images(1)
    with pytest.raises(AnogenError, match="foreground mode"):
        foreground_mask(images[0], fit_background(images), "nope")


@pytest.mark.parametrize(
    "folder, texture, low, high",
    [("mvtec_bottle/bottle", False, 0.4, 0.85), ("mvtec_grid/grid", True, 1.0, 1.0)],
)
def test_real_object_vs_texture(shared_data, folder, texture, low, high):
    paths = sorted((shared_data / folder / "train" / "good").iterdir())[:6]
    images = [read_image(p) for p in paths]
    model = fit_background(images)
    assert model.texture is texture
    fraction = float((foreground_mask(images[0], model) > 0).mean())
    assert low <= fraction <= high
    if not texture:  # the bottle is centred: the centre is object, the corners are background
        mask = foreground_mask(images[0], model)
        h, w = mask.shape
        assert mask[h // 2, w // 2] == 255 and mask[5, 5] == 0 and mask[-5, -5] == 0


@pytest.fixture(scope="module")
def variant_goods():
    """12 good images of each demo variant at 256 px with their exact foreground truth."""
    from anogen_data.data.demo_variants import VARIANTS, render_variant

    return {c: [render_variant(c, 0, "good", i) for i in range(12)] for c in VARIANTS}


@pytest.mark.parametrize("category, texture", [("demo-dark", False), ("demo-light", False), ("demo-texture", True)])
def test_low_contrast_variants_foreground_iou(variant_goods, category, texture):
    goods = variant_goods[category]
    model = fit_background(image for image, _, _ in goods)
    assert model.texture is texture
    for image, _, truth in goods:
        assert _iou(foreground_mask(image, model) > 0, truth > 0) >= 0.9
    if not texture:  # colour alone is not enough here: the features made the difference
        assert model.cue == "colour+features"


@pytest.mark.parametrize("category", ["demo-dark", "demo-light"])
def test_colour_alone_misses_the_low_contrast_objects(variant_goods, monkeypatch, category):
    """The estimator before features (colour distance only) gets these wrong: the case of issue 17."""
    import anogen_data.layout.foreground as fg

    monkeypatch.setattr(fg, "COLOUR_ENOUGH", 0.0)  # never add features
    goods = variant_goods[category]
    model = fit_background(image for image, _, _ in goods)
    ious = [_iou(foreground_mask(image, model) > 0, truth > 0) for image, _, truth in goods]
    assert model.cue == "colour" and np.mean(ious) < 0.75


def test_easy_categories_do_not_load_the_network(monkeypatch):
    import anogen_data.layout.foreground as fg

    monkeypatch.setattr(fg, "_feature_maps", lambda images: pytest.fail("features computed on an easy category"))
    images, _ = _object_images()
    assert fit_background(images).cue == "colour"


@pytest.mark.slow  # decodes four real categories (~20 s)
@pytest.mark.parametrize("folder, category, texture", [
    ("mvtec_bottle", "bottle", False), ("hazelnut_toy", "hazelnut", False),
    ("mvtec_grid", "grid", True), ("kolektorsdd", "kolektorsdd", True),
])
def test_real_learn_shot_defects_lie_on_the_estimated_foreground(shared_data, folder, category, texture):
    from anogen_data.data.image_io import read_mask
    from anogen_data.data.mvtec import load_category
    from anogen_data.data.split import build_index

    if not (shared_data / folder / category).is_dir():
        pytest.skip(f"{folder} not in the shared data")
    entries = build_index(load_category(shared_data / folder, category), category=category)
    goods = [e for e in entries if e.role == "train"]
    model = fit_background(read_image(e.path) for e in goods[:: max(1, len(goods) // 40)])
    assert model.texture is texture
    on = total = 0
    for shot in (e for e in entries if e.role == "learn"):
        defect = read_mask(shot.mask_path) > 0
        on += np.count_nonzero(defect & (foreground_mask(read_image(shot.path), model) > 0))
        total += np.count_nonzero(defect)
    assert on / total >= 0.95
