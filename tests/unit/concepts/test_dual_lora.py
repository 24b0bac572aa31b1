"""DualAnoDiff dual-branch LoRA (CVPR 2025): rows pick their branch's adapter, a tiny overfit lowers the
loss and changes only LoRA/SAIM/BCM, and the saved files load with diffusers' ``load_lora_weights``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anogen_data.concepts.dual_lora import (
    PART, WHOLE, DualTrainOptions, add_branch_adapters, branch_adapters, encode_prompts, fixed_loss,
    load_dual_concept, lora_weight_name, save_dual_concept, seeded, shot_tensors, to_tensor, train_dual_lora,
)
from anogen_data.synthesis.dual_attention import DualModules


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one torch thread (tests/conftest.py)


def _shots(size: int, count: int = 2):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(count)]
    masks = []
    for i in range(count):
        mask = np.zeros((size, size), np.uint8)
        mask[size // 4 + i : size // 2 + i, size // 4 : size // 2 + 2] = 255
        masks.append(mask)
    return images, masks


def _randomise_lora(*models, seed: int = 3) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for model in models:
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.copy_(torch.randn(param.shape, generator=gen) * 0.3)


def test_shot_tensors_put_the_part_on_black_inside_the_mask():
    images, masks = _shots(16, 1)
    stacked = shot_tensors(images, masks, 16)
    assert stacked.shape == (1, 7, 16, 16)
    inside = torch.from_numpy(masks[0] > 0)
    assert torch.equal(stacked[0, 3:6][:, inside], stacked[0, 0:3][:, inside])
    assert (stacked[0, 3:6][:, ~inside] == -1).all() and set(stacked[0, 6].unique().tolist()) == {-1.0, 1.0}


@torch.no_grad()
def test_each_row_uses_its_own_branch_adapter(tiny_sd):
    parts = tiny_sd()
    unet = parts.unet
    add_branch_adapters(unet, None, rank=4)
    _randomise_lora(unet)
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    embeds = torch.randn(2, 77, 32, generator=torch.Generator().manual_seed(1))
    with branch_adapters(unet, [WHOLE, PART]):
        mixed = unet(latents, 10, embeds).sample
    singles = []
    for row, branch in enumerate((WHOLE, PART)):
        unet.set_adapters(branch)
        singles.append(unet(latents[row : row + 1], 10, embeds[row : row + 1]).sample[0])
    torch.testing.assert_close(mixed[0], singles[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mixed[1], singles[1], atol=1e-5, rtol=1e-5)
    assert (singles[0] - singles[1]).abs().max() > 1e-3  # the adapters really differ


def _frozen_snapshot(parts) -> dict[str, torch.Tensor]:
    snap = {}
    for prefix, model in (("unet", parts.unet), ("vae", parts.vae), ("te", parts.text_encoder)):
        for name, param in model.named_parameters():
            if "lora_" not in name:
                snap[f"{prefix}.{name}"] = param.detach().clone()
    return snap


@pytest.mark.parametrize(
    "size,steps,pairs,text_lora",
    [
        pytest.param(16, 8, 1, False, id="fast-16px"),
        pytest.param(64, 30, 2, True, id="issue-64px-30-steps", marks=pytest.mark.slow),
    ],
)
def test_tiny_overfit_lowers_the_loss_and_trains_only_lora_saim_bcm(size, steps, pairs, text_lora, tiny_sd):
    parts = tiny_sd()
    images, masks = _shots(size)
    shots, backgrounds = shot_tensors(images, masks, size), to_tensor(images, size)
    options = DualTrainOptions(steps=steps, batch_size=pairs, lr=1e-2, rank=4, train_text_encoder=text_lora)
    add_branch_adapters(parts.unet, parts.text_encoder if text_lora else None, options.rank)
    dual = DualModules.for_unet(parts.unet)
    dual_before = {k: v.clone() for k, v in dual.state_dict().items()}
    lora_before = {n: p.detach().clone() for n, p in parts.unet.named_parameters() if "lora_" in n}
    frozen = _frozen_snapshot(parts)
    before = fixed_loss(parts, dual, shots, backgrounds, options)
    losses = train_dual_lora(parts, dual, shots, backgrounds, options)
    after = fixed_loss(parts, dual, shots, backgrounds, options)
    assert len(losses) == steps and after < before
    for key, value in _frozen_snapshot(parts).items():
        assert torch.equal(value, frozen[key]), f"frozen weight {key} changed"
    assert any(not torch.equal(p, lora_before[n]) for n, p in parts.unet.named_parameters() if "lora_B" in n)
    changed = {k for k, v in dual.state_dict().items() if not torch.equal(v, dual_before[k])}
    assert any(".alpha" in k for k in changed) and any("saim" in k and "to_out" in k for k in changed)


def test_saved_branch_loras_load_with_diffusers_load_lora_weights(tmp_path, tiny_sd):
    from anogen_data.synthesis.dualanodiff import DualAnoDiffPipeline

    trained = tiny_sd()
    add_branch_adapters(trained.unet, trained.text_encoder, rank=4)
    _randomise_lora(trained.unet, trained.text_encoder)
    dual = DualModules.for_unet(trained.unet)
    with torch.no_grad():
        next(iter(dual.bcm.values())).alpha.fill_(0.25)
    written = save_dual_concept(tmp_path, trained.unet, trained.text_encoder, dual)
    assert {lora_weight_name(WHOLE), lora_weight_name(PART)} <= {p.name for p in tmp_path.iterdir()}
    assert written[-1] == "dual_modules" and (tmp_path / "dual_modules").is_dir()

    fresh = tiny_sd()
    pipe = DualAnoDiffPipeline(fresh.vae, fresh.text_encoder, fresh.tokenizer, fresh.unet, fresh.scheduler,
                               DualModules.for_unet(fresh.unet))
    whole, part, loaded_dual = load_dual_concept(pipe, tmp_path, prefix="scratch_")
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    embeds = torch.randn(2, 77, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        with branch_adapters(trained.unet, [WHOLE, PART]):
            expected = trained.unet(latents, 10, embeds).sample
        with branch_adapters(pipe.unet, [whole, part]):
            got = pipe.unet(latents, 10, embeds).sample
        text_expected = encode_prompts(trained.text_encoder, trained.tokenizer, ["a vfx with sks", "sks"])
        text_got = encode_prompts(pipe.text_encoder, pipe.tokenizer, ["a vfx with sks", "sks"], [whole, part])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(text_got, text_expected, atol=1e-5, rtol=1e-5)
    for key, value in dual.state_dict().items():
        assert torch.equal(loaded_dual.state_dict()[key], value), key


def test_gradient_checkpointing_trains_the_same_as_without(tiny_sd):
    images, masks = _shots(16, 1)
    shots, backgrounds = shot_tensors(images, masks, 16), to_tensor(images, 16)
    runs = []
    for checkpointing in (False, True):
        parts = tiny_sd()
        options = DualTrainOptions(steps=3, batch_size=1, lr=1e-2, rank=4, train_text_encoder=False,
                                   gradient_checkpointing=checkpointing)
        with seeded(7):
            dual = DualModules.for_unet(parts.unet)
        runs.append(train_dual_lora(parts, dual, shots, backgrounds, options))
    assert runs[0][0] == runs[1][0]  # same forward
    # later steps: the same maths, recomputed; only float summation order may differ
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-5)


def test_training_is_seeded_and_leaves_the_global_rng_alone(tiny_sd):
    images, masks = _shots(16, 1)
    shots, backgrounds = shot_tensors(images, masks, 16), to_tensor(images, 16)
    runs, outer = [], torch.random.get_rng_state()
    with torch.random.fork_rng(devices=[]):  # this test's manual_seed calls stay inside it
        for _ in range(2):
            torch.manual_seed(len(runs))  # a different global state each run must not matter
            before = torch.random.get_rng_state()
            parts = tiny_sd()
            with seeded(7):
                dual = DualModules.for_unet(parts.unet)
            losses = train_dual_lora(parts, dual, shots, backgrounds,
                                     DualTrainOptions(steps=2, batch_size=1, lr=1e-2, rank=4, train_text_encoder=False))
            assert torch.equal(torch.random.get_rng_state(), before)
            lora = {k: v.clone() for k, v in parts.unet.state_dict().items() if "lora_" in k}
            runs.append((losses, lora))
    assert torch.equal(torch.random.get_rng_state(), outer)  # the rest of the session sees its own RNG
    assert runs[0][0] == runs[1][0]
    assert runs[0][1].keys() == runs[1][1].keys() and runs[0][1]
    for key, value in runs[0][1].items():
        assert torch.equal(runs[1][1][key], value), key


def test_to_tensor_resizes_every_image_to_the_square_side():
    images = [np.zeros((16, 24, 3), np.uint8), np.full((40, 16, 3), 255, np.uint8)]
    batch = to_tensor(images, 16)
    assert batch.shape == (2, 3, 16, 16)
    assert float(batch[0].max()) == -1.0 and float(batch[1].min()) == 1.0


@torch.no_grad()
def test_one_text_encoder_lora_is_shared_by_both_branches(tmp_path, tiny_sd):
    """The release trains ONE text-encoder LoRA: "sks" must mean the same in both branches."""
    from anogen_data.synthesis.dualanodiff import DualAnoDiffPipeline

    trained = tiny_sd()
    add_branch_adapters(trained.unet, trained.text_encoder, rank=4)
    assert list(trained.text_encoder.peft_config) == ["text"]  # one adapter, not one per branch
    _randomise_lora(trained.unet, trained.text_encoder)
    plain = tiny_sd().text_encoder
    shared = encode_prompts(trained.text_encoder, trained.tokenizer, ["sks"])
    assert (shared - encode_prompts(plain, trained.tokenizer, ["sks"])).abs().max() > 1e-3  # the LoRA acts
    save_dual_concept(tmp_path, trained.unet, trained.text_encoder, DualModules.for_unet(trained.unet))
    fresh = tiny_sd()
    pipe = DualAnoDiffPipeline(fresh.vae, fresh.text_encoder, fresh.tokenizer, fresh.unet, fresh.scheduler,
                               DualModules.for_unet(fresh.unet))
    whole, part, _ = load_dual_concept(pipe, tmp_path)
    rows = encode_prompts(pipe.text_encoder, pipe.tokenizer, ["sks", "sks", "a vfx with sks", "a vfx with sks"],
                          [whole, part, whole, part])
    torch.testing.assert_close(rows[0], rows[1], atol=0, rtol=0)  # same tokens -> same features in both branches
    torch.testing.assert_close(rows[2], rows[3], atol=0, rtol=0)
    torch.testing.assert_close(rows[:1], shared, atol=1e-5, rtol=1e-5)  # and they are the trained shared LoRA's


def test_routing_to_an_adapter_the_text_encoder_lacks_is_refused(tiny_sd):
    parts = tiny_sd()
    add_branch_adapters(parts.unet, parts.text_encoder, rank=4)
    with pytest.raises(ValueError, match="no LoRA adapter"):
        encode_prompts(parts.text_encoder, parts.tokenizer, ["sks"], ["whole"])


def test_training_references_are_aligned_one_per_shot(tiny_sd):
    images, masks = _shots(16, 2)
    options = DualTrainOptions(steps=1, batch_size=1, lr=1e-2, rank=4, train_text_encoder=False)
    parts = tiny_sd()
    with seeded(0):
        dual = DualModules.for_unet(parts.unet)
    with pytest.raises(ValueError, match="one BCM reference per shot"):
        train_dual_lora(parts, dual, shot_tensors(images, masks, 16), to_tensor(images[:1], 16), options)


def test_bcm_training_references_hold_no_defect_pixels(monkeypatch, tmp_path, tiny_sd):
    """Texture shot (foreground = whole image) with a pure red defect: the reference BCM trains on is the
    same shot with the defect inpainted away, so no red pixel is left and the rest is the shot itself."""
    import anogen_data.concepts.dual_lora as dual_lora

    size = 32
    rng = np.random.default_rng(0)
    texture = (np.full((size, size, 3), 120) + rng.integers(-8, 9, (size, size, 3))).astype(np.uint8)
    mask = np.zeros((size, size), np.uint8)
    mask[10:18, 8:20] = 255
    image = texture.copy()
    image[mask > 0] = (255, 0, 0)
    seen = {}

    def capture(components, dual, shots, backgrounds, options, on_step=None):
        seen["shots"], seen["backgrounds"] = shots, backgrounds
        return [0.0]

    monkeypatch.setattr(dual_lora, "train_dual_lora", capture)
    # a texture category: the foreground estimate is the whole image (the old code then kept the defect)
    monkeypatch.setattr("anogen_data.layout.foreground.estimate_foreground",
                        lambda images: [np.full(im.shape[:2], 255, np.uint8) for im in images])
    dual_lora.learn_dual_concept(tiny_sd(), [image], [mask], DualTrainOptions(steps=1, rank=4, resolution=size), tmp_path)
    reference = ((seen["backgrounds"][0].permute(1, 2, 0) + 1) * 127.5).round().numpy().astype(np.uint8)
    assert len(seen["backgrounds"]) == len(seen["shots"]) == 1
    redness = reference[..., 0].astype(int) - reference[..., 1:].max(axis=2)
    assert redness.max() < 40, "a defect pixel survived in the BCM reference"
    far = np.ones_like(mask, bool)
    far[2:26, 0:28] = False  # well away from the (dilated) defect the reference is the shot's own bytes
    np.testing.assert_array_equal(reference[far], image[far])
