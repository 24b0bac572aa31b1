"""The DualAnoDiff pipeline and backend (CVPR 2025) on tiny random components: whole, part and mask per
pair, same bytes under a seed, the BCM reference in the recipe, teaching errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from anogen_data.concepts.dual_lora import DualTrainOptions, learn_dual_concept, load_dual_concept
from anogen_data.errors import AnogenError
from anogen_data.records import Layout
from anogen_data.synthesis import get_backend
from anogen_data.synthesis.base import SynthesisContext
from anogen_data.synthesis.dual_attention import DualModules
from anogen_data.synthesis.dualanodiff import DualAnoDiffBackend, DualAnoDiffPipeline, background_only

SIZE = 32  # pixels: latents 16 x 16 through the tiny VAE


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one torch thread (tests/conftest.py)


def _object_image(seed: int, hw=(SIZE, SIZE)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.full((*hw, 3), 40, np.uint8) + rng.integers(0, 6, (*hw, 3), dtype=np.uint8)
    h, w = hw
    image[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = (180, 150, 60)
    return image


@pytest.fixture(scope="module")
def concepts(tmp_path_factory, tiny_sd):
    """A concepts folder with one tiny 'scratch' concept trained for two steps."""
    root = tmp_path_factory.mktemp("concepts")
    folder = root / "scratch"
    folder.mkdir()
    images = [_object_image(i) for i in range(2)]
    masks = [np.zeros((SIZE, SIZE), np.uint8) for _ in images]
    for mask in masks:
        mask[10:18, 12:20] = 255
    parts = tiny_sd()
    facts = learn_dual_concept(parts, images, masks, DualTrainOptions(steps=2, batch_size=1, rank=4, resolution=SIZE),
                               folder)
    (folder / "concept.json").write_text(json.dumps({"method": "dualanodiff", "defect_type": "scratch", **facts}))
    return root


def _pipeline(concepts, parts):
    """A DualAnoDiff pipeline over ``parts`` (fresh tiny components) with the 'scratch' concept loaded."""
    pipe = DualAnoDiffPipeline(parts.vae, parts.text_encoder, parts.tokenizer, parts.unet, parts.scheduler,
                               DualModules.for_unet(parts.unet))
    pipe.set_progress_bar_config(disable=True)
    whole, part, dual = load_dual_concept(pipe, concepts / "scratch")
    pipe.dual.load_state_dict(dual.state_dict())
    return pipe, (whole, part)


def test_pipeline_returns_whole_part_and_mask_with_the_same_bytes_under_a_seed(concepts, tiny_sd):
    pipe, adapters = _pipeline(concepts, tiny_sd())
    backgrounds = [_object_image(5), _object_image(6)]

    def run(seeds):
        return pipe(backgrounds[: len(seeds)], [torch.Generator().manual_seed(s) for s in seeds],
                    num_inference_steps=2, adapters=adapters, resolution=SIZE)

    first, again, other = run([1, 2]), run([1, 2]), run([3, 2])
    assert first.images.shape == first.parts.shape == (2, SIZE, SIZE, 3) and first.images.dtype == np.uint8
    assert first.masks.shape == (2, SIZE, SIZE) and set(np.unique(first.masks)) <= {0, 255}
    assert all(0.0 <= a <= 1.0 for a in first.agreement)
    for name in ("images", "parts", "masks"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.images[0], other.images[0])


def test_pipeline_rejects_mismatched_backgrounds(concepts, tiny_sd):
    pipe, adapters = _pipeline(concepts, tiny_sd())
    with pytest.raises(ValueError, match="one background per generator"):
        pipe([_object_image(0)], [torch.Generator(), torch.Generator()], num_inference_steps=1, adapters=adapters)


def _layout(source: str, number: int, hw=(40, 48)) -> Layout:
    return Layout(id=f"syn_{number:06d}", category="demo", defect_type="scratch", source_path=source,
                  bbox_xyxy=(4, 4, 12, 12), mask_rle={"size": list(hw), "counts": ""}, seed=number, shape_source="perlin")


def test_backend_records_the_bcm_reference_and_returns_source_sized_pixel_masks(concepts, tmp_path):
    from anogen_data.data.image_io import write_png

    assert get_backend("dualanodiff") is DualAnoDiffBackend
    images = [_object_image(7, (40, 48)), _object_image(8, (40, 48))]
    good = [tmp_path / f"{i:03d}.png" for i in range(2)]
    for path, image in zip(good, images):
        write_png(path, image)
    context = SynthesisContext(concepts_dir=str(concepts), model="tiny", device="cpu", good_paths=tuple(map(str, good)),
                               options={"steps": 2, "resolution": SIZE})
    backend = DualAnoDiffBackend(context)
    assert backend.foreground(images[0])[20, 24] == 255 and backend.foreground(images[0])[1, 1] == 0
    layouts = [_layout("/good/000.png", 1), _layout("/good/001.png", 2)]
    recipes = [backend.make_recipe(im, lay, np.random.default_rng(lay.seed)) for im, lay in zip(images, layouts)]
    assert [r["reference"] for r in recipes] == ["/good/000.png", "/good/001.png"]
    assert [r["extra"]["bcm_reference"] for r in recipes] == ["/good/000.png", "/good/001.png"]
    assert json.loads(json.dumps(recipes)) == recipes
    batch = backend.apply_batch(images, layouts, recipes)
    single = backend.apply(images[1], layouts[1], recipes[1])
    for image, mask in batch:
        assert image.shape == (40, 48, 3) and image.dtype == np.uint8
        assert mask.shape == (40, 48) and set(np.unique(mask)) <= {0, 255}
    assert backend.mask_quality == "pixel"
    # one generator per pair, batch-invariant speed path: a sample's bytes do not depend on its batch
    np.testing.assert_array_equal(batch[1][0], single[0])
    np.testing.assert_array_equal(batch[1][1], single[1])


def test_backend_names_the_missing_concept(tmp_path):
    backend = DualAnoDiffBackend(SynthesisContext(concepts_dir=str(tmp_path), model="tiny", device="cpu"))
    image = _object_image(0)
    recipe = backend.make_recipe(image, _layout("/g.png", 1), np.random.default_rng(0))
    with pytest.raises(AnogenError, match=r"scratch.*concepts learn --method dualanodiff"):
        backend.apply(image, _layout("/g.png", 1), recipe)


def test_background_only_removes_the_foreground_and_keeps_the_background():
    image = _object_image(0, (48, 48))
    foreground = np.zeros((48, 48), np.uint8)
    foreground[12:36, 12:36] = 255
    clean = background_only(image, foreground)
    assert np.array_equal(clean[foreground == 0], image[foreground == 0])
    assert np.abs(clean[24, 24].astype(int) - 40).max() < 20  # object colour replaced by background
    full = np.full((48, 48), 255, np.uint8)
    assert np.array_equal(background_only(image, full), image)  # textures are their own background


def test_attention_fusion_changes_only_the_mask(concepts, tiny_sd):
    pipe, adapters = _pipeline(concepts, tiny_sd())
    backgrounds = [_object_image(5)]

    def run(fusion):
        return pipe(backgrounds, [torch.Generator().manual_seed(1)], num_inference_steps=2, adapters=adapters,
                    resolution=SIZE, attention_fusion=fusion)

    plain, fused = run(0.0), run(1.0)
    np.testing.assert_array_equal(plain.images, fused.images)
    np.testing.assert_array_equal(plain.parts, fused.parts)
    assert fused.masks.shape == plain.masks.shape
    assert not np.array_equal(fused.masks, plain.masks)  # the fusion did change the mask
    assert fused.masks.any() and set(np.unique(fused.masks)) <= {0, 255}
    assert not fused.masks.all()  # the attention map alone, thresholded at half its range


def test_backend_refuses_a_concept_learned_on_another_model(tmp_path, concepts):
    import shutil

    shutil.copytree(concepts / "scratch", tmp_path / "scratch")
    meta = tmp_path / "scratch" / "concept.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "text_encoder_hash": "0" * 16, "base_model": "sd-x"}))
    backend = DualAnoDiffBackend(SynthesisContext(concepts_dir=str(tmp_path), model="tiny", device="cpu"))
    image = _object_image(0)
    recipe = backend.make_recipe(image, _layout("/g.png", 1), np.random.default_rng(0))
    with pytest.raises(AnogenError, match="learned on base model 'sd-x'.*--model"):
        backend.apply(image, _layout("/g.png", 1), recipe)
    assert DualAnoDiffBackend(SynthesisContext(concepts_dir=str(tmp_path)))._model_id() == "sd-x"
