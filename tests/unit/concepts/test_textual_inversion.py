"""AnoGen's masked textual inversion on tiny random SD components (CPU, 64 px shots)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anogen_data.concepts.textual_inversion import (
    Shot,
    TokenInjector,
    add_token,
    init_embedding,
    install_embedding,
    latent_mask,
    learn_token,
    load_embedding,
    masked_noise_loss,
    masked_step_loss,
    save_embedding,
)
from anogen_data.errors import AnogenError


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one torch thread (tests/conftest.py)


def make_shots(n: int = 2, size: int = 64) -> list[Shot]:
    """n 64 px noise images, each with a red square defect and its mask."""
    rng = np.random.default_rng(0)
    shots = []
    for i in range(n):
        image = rng.integers(0, 256, (size, size, 3), np.uint8)
        mask = np.zeros((size, size), np.uint8)
        mask[16 + 4 * i : 40, 12 : 36 + 4 * i] = 255
        image[mask > 0] = (220, 40, 30)
        shots.append(Shot(image=image, mask=mask))
    return shots


def fixed_batch(shots: list[Shot]) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = torch.stack([torch.from_numpy(s.image) for s in shots]).permute(0, 3, 1, 2).float() / 127.5 - 1
    return pixels, torch.stack([torch.from_numpy(s.mask) for s in shots])


def test_latent_mask_marks_every_cell_touched_by_a_defect_pixel():
    masks = torch.zeros(1, 8, 8, dtype=torch.uint8)
    masks[0, 0, 0] = 255  # one pixel of the top-left 2x2 cell
    masks[0, 5:8, 6:8] = 255
    out = latent_mask(masks, (4, 4))
    expected = torch.zeros(1, 1, 4, 4)
    expected[0, 0, 0, 0] = 1
    expected[0, 0, 2:4, 3] = 1
    assert torch.equal(out, expected)


def test_masked_loss_equals_hand_value():
    pred = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    target = torch.zeros_like(pred)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    assert masked_noise_loss(pred, target, mask).item() == pytest.approx((1 + 16) / 4)


@pytest.mark.parametrize("empty", [True, False])
def test_gradient_reaches_the_token_only_through_the_defect_mask(tiny, empty):
    from diffusers import DDPMScheduler

    token_id = add_token(tiny.tokenizer, tiny.text_encoder, "<scratch>")
    injector = TokenInjector(tiny.text_encoder, token_id, init_embedding(tiny.tokenizer, tiny.text_encoder, "defect"))
    shots = make_shots()
    pixels, masks = fixed_batch(shots)
    if empty:
        masks = torch.zeros_like(masks)
    loss = masked_step_loss(tiny, DDPMScheduler.from_config(tiny.scheduler.config), pixels, masks,
                            ["a photo of a <scratch>"] * 2, torch.Generator().manual_seed(0))
    loss.backward()
    grad = injector.vector.grad
    assert grad is not None and grad.shape == (32,)
    if empty:
        assert torch.count_nonzero(grad) == 0
    else:
        assert grad.abs().sum() > 0
    assert tiny.text_encoder.get_input_embeddings().weight.grad is None  # the table itself is frozen


def test_overfit_on_a_fixed_batch_lowers_the_masked_loss(tiny):
    """Two 64 px shots, fixed noise and timesteps, 30 Adam steps on the token vector only."""
    from diffusers import DDPMScheduler

    pixels, masks = fixed_batch(make_shots())
    token_id = add_token(tiny.tokenizer, tiny.text_encoder, "<scratch>")
    injector = TokenInjector(tiny.text_encoder, token_id, init_embedding(tiny.tokenizer, tiny.text_encoder, "defect"))
    optimizer = torch.optim.AdamW([injector.vector], lr=0.05, weight_decay=0.0)
    scheduler = DDPMScheduler.from_config(tiny.scheduler.config)
    losses = []
    for _ in range(30):
        loss = masked_step_loss(tiny, scheduler, pixels, masks, ["a photo of a <scratch>"] * 2,
                                torch.Generator().manual_seed(0))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 1e-4  # the random tiny model gives the text little leverage
    assert min(losses[-5:]) < min(losses[:5])


def test_learning_changes_only_the_new_row(tiny):
    shots = make_shots()
    table_before = tiny.text_encoder.get_input_embeddings().weight.detach().clone()
    init_id = tiny.tokenizer.encode("defect", add_special_tokens=False)[0]
    learned = learn_token(tiny, shots, token="<scratch>", steps=10, batch_size=2, lr=0.1, seed=0)
    assert len(learned.losses) == 10 and all(np.isfinite(learned.losses))
    table_after = tiny.text_encoder.get_input_embeddings().weight.detach()
    others = [i for i in range(table_before.shape[0]) if i != learned.token_id]
    assert torch.equal(table_after[others], table_before[others])
    assert torch.equal(table_after[learned.token_id], learned.vector)
    assert not torch.equal(learned.vector, table_before[init_id])
    assert len(tiny.tokenizer.encode("<scratch>", add_special_tokens=False)) == 1


def test_same_seed_same_embedding(tiny):
    from anogen_data.diffusion.loading import load_components

    a = learn_token(tiny, make_shots(), token="<s>", steps=3, batch_size=2, seed=7)
    b = learn_token(load_components("tiny", device="cpu", dtype="fp32"), make_shots(), token="<s>", steps=3, batch_size=2, seed=7)
    assert torch.equal(a.vector, b.vector) and a.losses == b.losses


def test_saved_embedding_loads_into_a_stock_pipeline(tiny, tmp_path):
    from diffusers import StableDiffusionPipeline

    from anogen_data.diffusion.tiny import build_tiny_components

    learned = learn_token(tiny, make_shots(), token="<scratch>", steps=2, batch_size=2, seed=0)
    path = tmp_path / "learned_embeds.safetensors"
    save_embedding(path, "<scratch>", learned.vector)
    pipe = StableDiffusionPipeline(**build_tiny_components(0), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.load_textual_inversion(str(tmp_path))
    ids = pipe.tokenizer.encode("<scratch>", add_special_tokens=False)
    assert len(ids) == 1
    row = pipe.text_encoder.get_input_embeddings().weight[ids[0]]
    assert torch.equal(row.detach(), learned.vector)
    assert load_embedding(path)[0] == "<scratch>"


def test_multi_token_init_word_and_duplicate_token_are_refused(tiny):
    with pytest.raises(AnogenError, match="init word"):
        init_embedding(tiny.tokenizer, tiny.text_encoder, "zqxj")
    add_token(tiny.tokenizer, tiny.text_encoder, "<scratch>")
    with pytest.raises(AnogenError, match="already exists"):
        add_token(tiny.tokenizer, tiny.text_encoder, "<scratch>")


def test_embedding_of_another_base_model_is_refused(tiny, tmp_path):
    path = tmp_path / "learned_embeds.safetensors"
    save_embedding(path, "<scratch>", torch.ones(768))  # SD-1.5 width, model is tiny (32)
    token, vector = load_embedding(path)
    with pytest.raises(AnogenError, match="width 768 does not match .* width 32"):
        install_embedding(tiny, token, vector, source=str(path))


@pytest.mark.parametrize("hw", [(256, 256), (200, 300)], ids=["square", "wide"])
def test_augmentation_keeps_the_defect_aspect_ratio_within_5_percent(hw):
    """The release resizes the whole image and flips horizontally only: a square defect stays square."""
    from anogen_data.concepts.textual_inversion import _batch, defect_box, make_augment

    h, w = hw
    mask = np.zeros(hw, np.uint8)
    mask[40:140, w - 120 : w - 20] = 255  # a 100 x 100 px defect, right of centre
    image = np.zeros((h, w, 3), np.uint8)
    image[mask > 0] = 255
    shots = [Shot(image=image, mask=mask)]
    augment = make_augment(64, seed=0)
    ratios, flips = [], set()
    for step in range(40):
        _, masks = _batch(shots, np.zeros(4, int), augment)
        for m in masks.numpy():
            x0, y0, x1, y1 = defect_box(m)
            ratios.append((x1 - x0) / (y1 - y0))
            flips.add((x0 + x1) / 2 < 32)  # flipped: the defect moves to the left half
    assert max(abs(r - 1.0) for r in ratios) <= 0.05, (min(ratios), max(ratios))
    assert flips == {True, False}  # both flip states occur


def test_same_seed_same_augmentation():
    from anogen_data.concepts.textual_inversion import make_augment

    shot = make_shots(1)[0]
    a, b = make_augment(32, seed=3), make_augment(32, seed=3)
    for _ in range(5):
        (ia, ma), (ib, mb) = a(shot.image, shot.mask), b(shot.image, shot.mask)
        assert ia.shape == (32, 32, 3) and ma.shape == (32, 32) and set(np.unique(ma)) <= {0, 255}
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(ma, mb)


def test_trainable_embedding_stays_fp32_with_a_bf16_model():
    """The release trains in fp32: with bf16 components the token's vector and the whole text path it
    feeds stay fp32 (only the UNet runs in bf16); the text encoder is handed back in bf16."""
    from anogen_data.diffusion.loading import load_components

    parts = load_components("tiny", device="cpu", dtype="bf16")
    seen = []
    handle = parts.text_encoder.get_input_embeddings().register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    hidden = []
    last = parts.text_encoder.register_forward_hook(lambda m, i, o: hidden.append(o[0].dtype))
    try:
        learned = learn_token(parts, make_shots(), token="<s>", steps=2, batch_size=2, seed=0)
    finally:
        handle.remove()
        last.remove()
    assert seen and set(seen) == {torch.float32} and set(hidden) == {torch.float32}
    assert learned.vector.dtype == torch.float32 and len(learned.losses) == 2
    assert parts.text_encoder.dtype == torch.bfloat16 and parts.unet.dtype == torch.bfloat16


def test_learning_defaults_are_the_release_sd_config():
    import inspect

    from anogen_data.config import LearnConfig

    defaults = {k: p.default for k, p in inspect.signature(learn_token).parameters.items()}
    assert (defaults["batch_size"], defaults["lr"]) == (2, 0.01)
    config = LearnConfig()
    assert config.anogen_lr * config.anogen_batch_size == pytest.approx(0.01)
