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
from anogen_data.diffusion.dual_reference import to_tensor
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


def test_unconditional_rows_get_the_zero_image_reference(concepts, tiny_sd, monkeypatch):
    """With guidance, BCM's write pass holds [zero image x P, backgrounds x P] (the release's negative_lat),
    so whole row 2r of the [uncond pairs, cond pairs] batch reads reference r."""
    pipe, adapters = _pipeline(concepts, tiny_sd())
    backgrounds = [_object_image(5), _object_image(6)]
    written = []
    original = pipe._write_background

    def spy(state, ref_latents, ref_noise, t, whole_embeds, adapter):
        written.append((ref_latents.clone(), whole_embeds.shape[0]))
        return original(state, ref_latents, ref_noise, t, whole_embeds, adapter)

    monkeypatch.setattr(pipe, "_write_background", spy)
    pipe(backgrounds, [torch.Generator().manual_seed(s) for s in (1, 2)], num_inference_steps=2, guidance_scale=2.0,
         adapters=adapters, resolution=SIZE)
    refs, rows = written[0]
    assert refs.shape[0] == rows == 4  # one reference per whole row: 2 unconditional + 2 conditional pairs
    factor = pipe.vae.config.scaling_factor
    with torch.no_grad():
        zero = pipe.vae.encode(torch.zeros(1, 3, SIZE, SIZE)).latent_dist.mode() * factor
        own = torch.cat([pipe.vae.encode(x[None]).latent_dist.mode() for x in to_tensor(backgrounds, SIZE)]) * factor
    torch.testing.assert_close(refs[:2], zero.expand(2, -1, -1, -1), atol=0, rtol=0)
    torch.testing.assert_close(refs[2:], own, atol=0, rtol=0)


def test_sampling_defaults_are_the_releases_pndm_50_steps_guidance_2(concepts, tmp_path):
    import diffusers
    import yaml

    from anogen_data.synthesis.dualanodiff import DualAnoDiffPipeline

    defaults = inspect_defaults(DualAnoDiffPipeline.__call__)
    assert (defaults["num_inference_steps"], defaults["guidance_scale"], defaults["bcm"]) == (50, 2.0, True)
    for params in ("params.yaml", "pipelines/dualanodiff/params.yaml"):
        options = yaml.safe_load(open(params))["generate"]["options"]["dualanodiff"]
        assert (options["scheduler"], options["steps"], options["guidance"], options["bcm"]) == ("pndm", 50, 2.0, True)
    backend = DualAnoDiffBackend(SynthesisContext(concepts_dir=str(concepts), model="tiny", device="cpu",
                                                  options={"resolution": SIZE, "steps": 2}))
    image = _object_image(7, (40, 48))
    recipe = backend.make_recipe(image, _layout("/g.png", 1), np.random.default_rng(0))
    assert (recipe["scheduler"], recipe["guidance"]) == ("pndm", 2.0)
    backend.apply(image, _layout("/g.png", 1), recipe)
    scheduler = backend.pipeline().scheduler
    assert isinstance(scheduler, diffusers.PNDMScheduler) and scheduler.config.skip_prk_steps


def inspect_defaults(func) -> dict:
    import inspect

    return {k: p.default for k, p in inspect.signature(func).parameters.items() if p.default is not inspect.Parameter.empty}


def test_training_and_generation_modules_do_not_import_each_other():
    """concepts/dual_lora.py and synthesis/dualanodiff.py share diffusion/conditioning.py and
    diffusion/dual_reference.py; dual_lora must not import the generation module, even inside a function."""
    import ast
    from pathlib import Path

    import anogen_data.concepts.dual_lora as dual_lora

    tree = ast.parse(Path(dual_lora.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert "anogen_data.synthesis.dualanodiff" not in imported


def test_there_is_one_encode_prompts():
    import anogen_data.concepts.dual_lora as dual_lora
    import anogen_data.diffusion.blended as blended
    import anogen_data.synthesis.dualanodiff as dualanodiff
    from anogen_data.diffusion.conditioning import encode_prompts

    assert blended.encode_prompts is dual_lora.encode_prompts is dualanodiff.encode_prompts is encode_prompts


@torch.no_grad()
def test_encode_prompts_rows_do_not_depend_on_the_batch(tiny_sd):
    from anogen_data.diffusion.conditioning import encode_prompts

    parts = tiny_sd()
    batch = encode_prompts(parts.text_encoder, parts.tokenizer, ["a scratch", "a hole", "a scratch"], dtype=torch.float64)
    alone = encode_prompts(parts.text_encoder, parts.tokenizer, ["a hole"])
    assert batch.shape == (3, 77, 32) and batch.dtype == torch.float64
    assert torch.equal(batch[1].float(), alone[0]) and torch.equal(batch[0], batch[2])
