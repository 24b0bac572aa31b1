"""SAIM and BCM (DualAnoDiff, CVPR 2025) on a tiny real UNet2DConditionModel: identity at init, real
coupling when trained, gradients to BCM's ``a`` and MLP."""

from __future__ import annotations

import pytest
import torch

from anogen_data.synthesis.dual_attention import SAIM, DualModules, transformer_blocks

LATENT = 8  # 16 px images through the tiny VAE: small and fast; the UNet is the real class


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one torch thread (tests/conftest.py)


@pytest.fixture(scope="module")
def unet(tiny_sd):
    return tiny_sd().unet


def _inputs(pairs: int = 1, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    latents = torch.randn(2 * pairs, 4, LATENT, LATENT, generator=gen)
    embeds = torch.randn(2 * pairs, 77, 32, generator=gen)
    return latents, torch.tensor(500), embeds


def _randomise(modules, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in modules.parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * 0.2)


@torch.no_grad()
def test_untrained_saim_and_bcm_reproduce_the_plain_unet_exactly(unet):
    latents, t, embeds = _inputs(pairs=2)
    plain = unet(latents, t, embeds).sample
    dual = DualModules.for_unet(unet)
    with dual.attached(unet) as state:
        state.bcm = "write"
        unet(torch.randn(2, 4, LATENT, LATENT, generator=torch.Generator().manual_seed(3)), t, embeds[0::2])
        state.bcm = "read"
        assert state.bank, "the write pass stored nothing"
        with_modules = unet(latents, t, embeds).sample
    assert torch.equal(plain, with_modules)
    assert torch.equal(plain, unet(latents, t, embeds).sample), "processors were not restored on exit"


@torch.no_grad()
def test_saim_makes_the_whole_branch_depend_on_the_part_prompt(unet):
    latents, t, embeds = _inputs()
    other_part = embeds.clone()
    other_part[1] = torch.randn(77, 32, generator=torch.Generator().manual_seed(5))
    dual = DualModules.for_unet(unet)
    for module in dual.saim.values():
        _randomise(module)
    with dual.attached(unet) as state:
        on = unet(latents, t, embeds).sample[0], unet(latents, t, other_part).sample[0]
        state.saim = False
        off = unet(latents, t, embeds).sample[0], unet(latents, t, other_part).sample[0]
    assert (on[0] - on[1]).abs().max() > 1e-4
    assert torch.equal(off[0], off[1])


def test_saim_rejects_an_odd_batch():
    with pytest.raises(ValueError, match="odd batch"):
        SAIM(32)(torch.zeros(3, 4, 32))


@torch.no_grad()
def _whole_output(unet, dual, reference: torch.Tensor) -> torch.Tensor:
    latents, t, embeds = _inputs()
    with dual.attached(unet) as state:
        state.saim = False
        state.bcm = "write"
        unet(reference, t, embeds[0:1])
        state.bcm = "read"
        return unet(latents, t, embeds).sample


def test_bcm_reads_the_background_only_when_a_is_positive(unet):
    ref_a = torch.randn(1, 4, LATENT, LATENT, generator=torch.Generator().manual_seed(7))
    ref_b = torch.randn(1, 4, LATENT, LATENT, generator=torch.Generator().manual_seed(8))
    dual = DualModules.for_unet(unet)
    zero_a = _whole_output(unet, dual, ref_a), _whole_output(unet, dual, ref_b)
    assert torch.equal(zero_a[0], zero_a[1])
    with torch.no_grad():
        for bcm in dual.bcm.values():
            bcm.alpha.fill_(0.5)
    out_a, out_b = _whole_output(unet, dual, ref_a), _whole_output(unet, dual, ref_b)
    assert (out_a[0] - out_b[0]).abs().max() > 1e-4, "whole branch ignored the background"
    assert torch.equal(out_a[1], out_b[1]), "part branch must not read the background"


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_bcm_a_and_mlp_receive_gradients(unet, alpha):
    latents, t, embeds = _inputs()
    dual = DualModules.for_unet(unet)
    with torch.no_grad():
        for bcm in dual.bcm.values():
            bcm.alpha.fill_(alpha)
    with dual.attached(unet) as state:
        state.bcm = "write"
        with torch.no_grad():
            unet(torch.randn(1, 4, LATENT, LATENT, generator=torch.Generator().manual_seed(3)), t, embeds[0:1])
        state.bcm = "read"
        unet(latents, t, embeds).sample.square().mean().backward()
    alpha_grads = [float(b.alpha.grad.abs()) for b in dual.bcm.values()]
    mlp_grads = [float(p.grad.abs().sum()) for b in dual.bcm.values() for p in b.mlp.parameters()]
    assert all(g > 0 for g in alpha_grads)
    assert (sum(mlp_grads) > 0) == (alpha > 0)  # d out / d MLP carries the factor a


@torch.no_grad()
def test_cross_attention_capture_records_the_chosen_rows_and_leaves_the_output_alone(unet):
    from anogen_data.synthesis.dual_attention import average_map, capture_cross_attention

    latents, t, embeds = _inputs(pairs=2)
    plain = unet(latents, t, embeds).sample
    with capture_cross_attention(unet, batch=4, rows=slice(1, 4, 2), tokens=[1, 2]) as maps:
        captured = unet(latents, t, embeds).sample
        unet(latents[:1], t, embeds[:1])  # another batch size (BCM's write pass): not recorded
    torch.testing.assert_close(captured, plain, atol=1e-5, rtol=1e-5)
    assert len(maps) == len(transformer_blocks(unet))  # one map per block, the write-like call skipped
    assert all(m.shape[0] == 2 and ((m >= 0) & (m <= 1)).all() for m in maps)
    heat = average_map(maps, 16)
    assert heat.shape == (2, 16, 16) and float(heat.min()) == 0.0 and abs(float(heat.max()) - 1.0) < 1e-6


def test_saim_sits_in_every_attention_processor_and_acts_there(unet):
    """As released: SAIM inside each self- AND cross-attention processor (2 per transformer block)."""
    from anogen_data.synthesis.dual_attention import DualAttnProcessor

    dual = DualModules.for_unet(unet)
    blocks = transformer_blocks(unet)
    assert len(dual.saim) == 2 * len(blocks) == len(unet.attn_processors)
    with dual.attached(unet):
        processors = unet.attn_processors
        assert all(isinstance(p, DualAttnProcessor) and p.saim is not None for p in processors.values())
        assert len({id(p.saim) for p in processors.values()}) == len(processors)  # one SAIM per processor
    latents, t, embeds = _inputs()
    with torch.no_grad():
        plain = unet(latents, t, embeds).sample
        cross = next(p.saim for name, p in _installed(dual, unet) if name.endswith("attn2.processor"))
        _randomise(cross)
        with dual.attached(unet):
            changed = unet(latents, t, embeds).sample
    assert (changed - plain).abs().max() > 1e-4, "the cross-attention SAIM is not on the forward path"


def _installed(dual, unet):
    with dual.attached(unet):
        return list(unet.attn_processors.items())


def test_legacy_block_placement_still_loads_and_runs(unet, tmp_path):
    legacy = DualModules([n for n, _ in transformer_blocks(unet)], [b.norm1.normalized_shape[0] for _, b in transformer_blocks(unet)])
    assert legacy.config.saim_places == "block" and len(legacy.saim) == len(transformer_blocks(unet))
    legacy.save_pretrained(tmp_path / "dual")
    loaded = DualModules.from_pretrained(tmp_path / "dual")
    latents, t, embeds = _inputs()
    with torch.no_grad(), loaded.attached(unet):
        assert unet(latents, t, embeds).sample.shape == latents.shape
