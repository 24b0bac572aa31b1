"""Blended latent diffusion: generate only inside a mask of the latent, keep the rest from a source image.

AnoGen stage 2 (Gui et al., ECCV 2024, https://arxiv.org/abs/2505.09263) uses Blended Latent Diffusion
(Avrahami et al., SIGGRAPH 2023, https://arxiv.org/abs/2206.02779): encode the good image to z0; at
every DDIM step, after the UNet update, replace the latents outside the box with z0 noised to the next
step's level, so only the box is generated. Classifier-free guidance on the learned token's prompt.

Determinism: one ``torch.Generator`` per sample draws that sample's initial noise and its background
noise for every step, in a fixed order, so batching does not change any sample's random numbers.
Shapes: images (B, 3, R, R) in [-1, 1]; latents (B, 4, R/f, R/f); masks (B, 1, R/f, R/f) in {0, 1}.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from anogen_data.diffusion.conditioning import encode_prompts


def _noise(shape: Sequence[int], generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Per-sample standard normal noise (B, *shape) drawn on CPU (same numbers on any device)."""
    return torch.stack([torch.randn(tuple(shape), generator=g) for g in generators])


@torch.no_grad()
def encode_images(components, pixels: torch.Tensor) -> torch.Tensor:
    """VAE posterior means of ``pixels`` (B, 3, R, R) in [-1, 1], scaled: latents (B, 4, R/f, R/f).
    One sample per call (batch invariance; the VAE runs once per sample, so this costs little)."""
    c = components
    means = [c.vae.encode(p[None].to(c.device, c.dtype)).latent_dist.mean for p in pixels]  # per sample
    return torch.cat(means) * c.vae.config.scaling_factor


@torch.no_grad()
def decode_latents(components, latents: torch.Tensor) -> torch.Tensor:
    """VAE decode to uint8 images (B, R, R, 3) on CPU, one sample per call (batch invariance)."""
    c = components
    images = torch.cat([c.vae.decode(z[None] / c.vae.config.scaling_factor).sample for z in latents])  # per sample
    images = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return images.permute(0, 2, 3, 1).cpu()


@torch.no_grad()
def blended_latent_diffusion(
    components,
    pixels: torch.Tensor,
    masks: torch.Tensor,
    prompts: Sequence[str],
    generators: Sequence[torch.Generator],
    *,
    steps: int = 50,
    guidance: float = 10.0,
    negative_prompt: str = "",
) -> torch.Tensor:
    """Generate inside ``masks`` and keep the source latents outside (AnoGen's stage 2 sampler).

    Args:
        components: loaded model (``anogen_data.diffusion.loading.Components``).
        pixels: source windows (B, 3, R, R) float in [-1, 1], R = the model's resolution.
        masks: (B, 1, R/f, R/f) float {0, 1}; 1 = generate here.
        prompts: one prompt per sample (the learned token, e.g. "<scratch>").
        generators: one CPU ``torch.Generator`` per sample.
        steps: DDIM steps (AnoGen: 50). guidance: classifier-free guidance scale (AnoGen: 10).

    Returns:
        Decoded images, uint8 (B, R, R, 3) on CPU (pixels outside the box are NOT yet pasted back).
    """
    from diffusers import DDIMScheduler

    c = components
    scheduler = DDIMScheduler.from_config(c.scheduler.config)
    scheduler.set_timesteps(steps, device=c.device)
    z0 = encode_images(c, pixels)
    m = masks.to(c.device, c.dtype)
    cond = encode_prompts(c.text_encoder, c.tokenizer, prompts, dtype=c.dtype)
    uncond = encode_prompts(c.text_encoder, c.tokenizer, [negative_prompt] * len(prompts), dtype=c.dtype)
    context = torch.cat([uncond, cond])
    shape = z0.shape[1:]
    first = _noise(shape, generators).to(c.device, c.dtype)
    latents = scheduler.add_noise(z0, first, scheduler.timesteps[:1].repeat(len(z0)))
    timesteps = scheduler.timesteps
    for i, t in enumerate(timesteps):
        model_in = scheduler.scale_model_input(torch.cat([latents, latents]), t)
        if c.unet.device.type == "cuda":
            model_in = model_in.contiguous(memory_format=torch.channels_last)
        eps_uncond, eps_cond = c.unet(model_in, t, encoder_hidden_states=context).sample.chunk(2)
        eps = eps_uncond + guidance * (eps_cond - eps_uncond)
        latents = scheduler.step(eps, t, latents).prev_sample
        if i + 1 < len(timesteps):
            bg_noise = _noise(shape, generators).to(c.device, c.dtype)
            background = scheduler.add_noise(z0, bg_noise, timesteps[i + 1 : i + 2].repeat(len(z0)))
        else:
            background = z0
        latents = m * latents + (1 - m) * background
    return decode_latents(c, latents)
