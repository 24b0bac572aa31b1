"""The blended-latent sampler keeps the source outside the mask in LATENT space, at every step.

The anogen backend pastes the source pixels back outside the box, so its byte-identical background
test cannot see the latent blend; these tests look at the latents the UNet receives instead (Blended
Latent Diffusion, Avrahami et al. 2023: after each update, outside the mask = z0 noised to the next
step's level; after the last step = z0 itself).
"""

from __future__ import annotations

import torch

from anogen_data.diffusion import blended
from anogen_data.diffusion.blended import blended_latent_diffusion, encode_images

STEPS = 4


def _run(parts, monkeypatch, seeds=(7, 8)):
    """Run the sampler on 2 samples; returns (unet input latents per step, final latents, z0, masks)."""
    res, f = parts.resolution, parts.vae_scale_factor
    pixels = torch.rand(len(seeds), 3, res, res, generator=torch.Generator().manual_seed(1)) * 2 - 1
    masks = torch.zeros(len(seeds), 1, res // f, res // f)
    masks[0, :, 1:4, 2:6] = 1
    masks[1, :, 3:7, 0:3] = 1
    seen: list[torch.Tensor] = []

    def record(module, args, kwargs):
        seen.append(args[0][: len(seeds)].clone())  # the first half of the CFG batch is the latents

    final: list[torch.Tensor] = []

    def fake_decode(components, latents):
        final.append(latents.clone())
        return torch.zeros(len(latents), res, res, 3, dtype=torch.uint8)

    parts.unet.register_forward_pre_hook(record, with_kwargs=True)
    monkeypatch.setattr(blended, "decode_latents", fake_decode)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    blended_latent_diffusion(parts, pixels, masks, ["a <scratch>"] * len(seeds), gens, steps=STEPS, guidance=3.0)
    return seen, final[0], encode_images(parts, pixels), masks


def _expected_backgrounds(parts, z0, seeds):
    """z0 noised to each later step's level with each sample's own generator (initial noise drawn first)."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler.from_config(parts.scheduler.config)
    scheduler.set_timesteps(STEPS)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    shape = tuple(z0.shape[1:])
    for g in gens:
        torch.randn(shape, generator=g)  # the initial noise
    out = []
    for t in scheduler.timesteps[1:]:
        noise = torch.stack([torch.randn(shape, generator=g) for g in gens])
        out.append(scheduler.add_noise(z0, noise, t.repeat(len(z0))))
    return out


def test_latents_outside_the_mask_are_the_source_noised_to_each_step(tiny, monkeypatch):
    seeds = (7, 8)
    seen, final, z0, masks = _run(tiny, monkeypatch, seeds)
    assert len(seen) == STEPS
    outside = (masks == 0).expand_as(z0)
    expected = _expected_backgrounds(tiny, z0, seeds)
    for step, (got, want) in enumerate(zip(seen[1:], expected), start=1):
        assert torch.allclose(got[outside], want[outside], atol=1e-5), f"step {step}"
        assert not torch.allclose(got[outside], z0[outside], atol=1e-3), f"step {step} is not noised"
    assert torch.allclose(final[outside], z0[outside], atol=1e-6)  # after the last step: z0 itself


def test_latents_inside_the_mask_are_generated_not_copied(tiny, monkeypatch):
    seen, final, z0, masks = _run(tiny, monkeypatch)
    inside = (masks == 1).expand_as(z0)
    assert not torch.allclose(final[inside], z0[inside], atol=1e-2)
    assert torch.isfinite(final).all() and all(torch.isfinite(s).all() for s in seen)
