"""The anogen backend: blended latent diffusion in the box with tiny random SD components (CPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from anogen_data.errors import AnogenError
from anogen_data.records import Layout
from anogen_data.synthesis.anogen import (
    AnoGenBackend, blend_region, blend_weights, crop_window, latent_box_mask, refined_mask,
)
from anogen_data.synthesis.base import SynthesisContext

STEPS = 8  # enough to exercise the loop; the algorithm does not depend on the count


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one torch thread (tests/conftest.py)


def write_concept(root, defect="scratch", width=32, method="anogen"):
    """A concept folder as `concepts learn` writes it, with a seeded random token vector."""
    from anogen_data.concepts.textual_inversion import save_embedding

    folder = root / defect
    folder.mkdir(parents=True)
    vector = torch.randn(width, generator=torch.Generator().manual_seed(0))
    save_embedding(folder / "learned_embeds.safetensors", f"<{defect}>", vector)
    (folder / "concept.json").write_text(json.dumps({
        "method": method, "defect_type": defect, "token": f"<{defect}>", "base_model": "tiny",
        "weights": "learned_embeds.safetensors", "text_encoder_hash": "c79345ce67a3a197",
    }))
    return root


def layout(i, box, defect="scratch"):
    return Layout(id=f"syn_{i:06d}", category="demo", defect_type=defect, source_path="src.png",
                  bbox_xyxy=tuple(box), mask_rle={}, seed=100 + i, shape_source="perlin")


def backend(tmp_path, batch_size=1, **options):
    concepts = tmp_path / "concepts"
    if not concepts.exists():
        write_concept(concepts)
    context = SynthesisContext(concepts_dir=str(concepts), model="tiny", device="cpu", dtype="fp32",
                               batch_size=batch_size, options={"steps": STEPS, **options})
    return AnoGenBackend(context)


def source(h=80, w=100):
    return np.random.default_rng(3).integers(0, 256, (h, w, 3), np.uint8)


def outside(shape, box):
    keep = np.ones(shape[:2], bool)
    x0, y0, x1, y1 = box
    keep[y0:y1, x0:x1] = False
    return keep


def test_only_the_blend_region_changes_and_the_background_is_byte_identical(tmp_path):
    b, image, box = backend(tmp_path), source(), (30, 20, 60, 44)
    recipe = b.make_recipe(image, layout(0, box), np.random.default_rng(0))
    assert recipe["blend_margin"] == 16 and recipe["blend_xyxy"] == [22, 12, 68, 52]  # box grown by 8 px
    out, mask = b.apply(image, layout(0, box), recipe)
    keep = outside(image.shape, recipe["blend_xyxy"])
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[keep], image[keep])
    assert (out[~outside(image.shape, box)] != image[~outside(image.shape, box)]).any()
    assert set(np.unique(mask)) <= {0, 255} and mask[~keep].any() and not mask[keep].any()


def test_hard_paste_is_kept_as_an_option(tmp_path):
    b, image, box = backend(tmp_path, blend_margin=0), source(), (30, 20, 60, 44)
    recipe = b.make_recipe(image, layout(0, box), np.random.default_rng(0))
    out, _ = b.apply(image, layout(0, box), recipe)
    assert recipe["blend_xyxy"] == list(box)
    assert np.array_equal(out[outside(image.shape, box)], image[outside(image.shape, box)])


def test_no_hard_edge_on_the_box_the_blend_weight_ramps_across_its_border():
    box, margin = (20, 10, 60, 40), 16
    region = blend_region(box, margin, 100, 80)
    w = blend_weights(region, box, margin)
    x0, y0 = region[:2]
    row = w[25 - y0]  # a row through the box: left band, inside, right band
    assert row[0] == pytest.approx(0.5 / margin) and row[20 - x0] == pytest.approx(0.5 + 0.5 / margin) and row[19 - x0] == pytest.approx(0.5 - 0.5 / margin)
    assert row[40 - x0] == 1.0
    left = row[: 40 - x0]
    assert np.all(np.diff(left) >= 0) and np.abs(np.diff(row)).max() <= 1 / margin + 1e-6  # no step anywhere
    assert w.min() == w[0, 0] == 0  # the region's corners fade to 0 (round ramp around the box corners)
    hard = blend_weights(box, box, 0)
    assert hard.min() == hard.max() == 1.0  # margin 0: the old paste (1 in the box, 0 outside)


def test_blended_pixels_ramp_from_generated_to_source_across_the_border(tmp_path):
    """The output at the box border is a mix of generated and source pixels, not a jump between them."""
    from anogen_data.synthesis.anogen import blend_into

    source_image = np.zeros((40, 60, 3), np.uint8)
    generated = np.full((40, 60, 3), 200, np.uint8)
    box, margin = (20, 10, 40, 30), 8
    region = blend_region(box, margin, 60, 40)
    out = blend_into(source_image, generated, region, blend_weights(region, box, margin))
    row = out[20, :, 0].astype(int)
    assert row[0] == 0 and row[30] == 200 and np.all(np.diff(row[:30]) >= 0) and 0 < row[20] < 200
    assert np.abs(np.diff(row)).max() <= 200 / margin + 1  # at most one ramp step between neighbours
    assert np.array_equal(out[outside(out.shape, region)], source_image[outside(out.shape, region)])


def test_empty_box_returns_the_source(tmp_path):
    b, image = backend(tmp_path), source()
    out, mask = b(image, layout(0, (40, 30, 40, 50)), np.random.default_rng(0))
    assert np.array_equal(out, image) and not mask.any()


def test_same_seed_same_bytes_with_batch_size_1_and_4(tmp_path):
    image = source()
    layouts = [layout(i, (10 + 12 * i, 15, 34 + 12 * i, 45)) for i in range(4)]
    one, four = backend(tmp_path, batch_size=1), backend(tmp_path, batch_size=4)
    recipes = [one.make_recipe(image, lay, np.random.default_rng([lay.seed, 2])) for lay in layouts]
    assert recipes == [four.make_recipe(image, lay, np.random.default_rng([lay.seed, 2])) for lay in layouts]
    singles = [one.apply(image, lay, rec) for lay, rec in zip(layouts, recipes)]
    batched = four.apply_batch([image] * 4, layouts, recipes)
    for (a, ma), (b, mb) in zip(singles, batched):
        assert np.array_equal(a, b) and np.array_equal(ma, mb)
    assert not np.array_equal(singles[0][0], singles[1][0])


def test_box_outside_the_image_is_refused(tmp_path):
    b, image = backend(tmp_path), source()
    with pytest.raises(AnogenError, match=r"box \[90, 10, 120, 30\] is outside the 100x80 image"):
        b.make_recipe(image, layout(0, (90, 10, 120, 30)), np.random.default_rng(0))


def test_concept_of_another_base_model_is_refused(tmp_path):
    write_concept(tmp_path / "concepts", defect="crack", width=768)
    b = backend(tmp_path)
    with pytest.raises(AnogenError, match="width 768 does not match"):
        b.make_recipe(source(), layout(0, (10, 10, 30, 30), defect="crack"), np.random.default_rng(0))


def test_missing_concept_and_missing_concepts_dir_are_clear_errors(tmp_path):
    b = backend(tmp_path)
    with pytest.raises(AnogenError, match=r"spot/concept.json does not exist; learn it with .*--defect spot"):
        b.make_recipe(source(), layout(0, (10, 10, 30, 30), defect="spot"), np.random.default_rng(0))
    with pytest.raises(AnogenError, match="needs --concepts"):
        AnoGenBackend(SynthesisContext(model="tiny"))
    with pytest.raises(AnogenError, match="unknown anogen option"):
        backend(tmp_path, guidence=3)


def test_large_images_get_a_window_at_model_resolution_never_a_resize():
    assert crop_window(900, 900, (100, 200, 140, 230), 64) == (88, 183, 152, 247)
    assert crop_window(900, 900, (0, 0, 10, 10), 64) == (0, 0, 64, 64)
    assert crop_window(900, 900, (880, 890, 900, 900), 64) == (836, 836, 900, 900)
    assert crop_window(900, 900, (100, 100, 300, 150), 64) == (100, 93, 300, 157)  # box wider than R
    assert crop_window(50, 40, (5, 5, 20, 20), 64) == (0, 0, 50, 40)  # image smaller than R


def test_latent_box_mask_covers_the_box_cells():
    mask = latent_box_mask((3, 4, 9, 10), (64, 64), 64, 2)
    assert mask.shape == (1, 32, 32)
    expected = np.zeros((1, 32, 32), np.float32)
    expected[0, 2:5, 1:5] = 1
    assert np.array_equal(mask, expected)
    half = latent_box_mask((0, 0, 64, 64), (128, 128), 64, 2)  # window twice R: cells halve
    assert half[0].sum() == 16 * 16


def test_refined_mask_keeps_changed_pixels_inside_the_box_only():
    src = np.zeros((20, 20, 3), np.uint8)
    out = src.copy()
    out[5:10, 5:10] = 200  # changed block
    out[15, 15] = 255  # changed but outside the box
    mask = refined_mask(src, out, (2, 2, 14, 14), threshold=24, kernel=3)
    assert np.array_equal(np.argwhere(mask == 255).min(0), [5, 5])
    assert np.array_equal(np.argwhere(mask == 255).max(0), [9, 9])
    assert mask[15, 15] == 0
    unchanged = refined_mask(src, src, (2, 2, 6, 6), threshold=24, kernel=3)
    assert unchanged.sum() == 16 * 255  # nothing visible changed: the box is the label
