"""Inference speed settings for the diffusion backends (AnoGen, ECCV 2024; DualAnoDiff, CVPR 2025).

Our path: PyTorch scaled-dot-product attention (flash / memory-efficient kernels on CUDA), channels_last
memory format for the convolutions, half precision (chosen by ``loading.resolve_dtype``), batched
samples, and optionally ``torch.compile`` of the UNet. The reference path of the papers' released
code: fp32, one image at a time, the classic attention (explicit softmax(QK^T)V, diffusers'
``AttnProcessor``). The benchmark (``benchmarks/synthesis_throughput.py``) measures both.
"""

from __future__ import annotations


def optimise_for_inference(components, *, compile_unet: bool = False):
    """Put ``components`` on our fast path in place and return them.

    SDPA attention everywhere; on CUDA the UNet and VAE also go channels_last; ``compile_unet`` wraps
    the UNet's forward with ``torch.compile`` (first call compiles: worth it only for long runs).
    """
    import torch
    from diffusers.models.attention_processor import AttnProcessor2_0

    components.unet.set_attn_processor(AttnProcessor2_0())
    components.vae.set_attn_processor(AttnProcessor2_0())
    if components.device.type == "cuda":
        components.unet.to(memory_format=torch.channels_last)
        components.vae.to(memory_format=torch.channels_last)
    if compile_unet:
        components.unet.forward = torch.compile(components.unet.forward, dynamic=False)
    return components


def use_reference_attention(components):
    """Put ``components`` on the reference path in place: classic attention (no fused SDPA kernel)."""
    from diffusers.models.attention_processor import AttnProcessor

    components.unet.set_attn_processor(AttnProcessor())
    components.vae.set_attn_processor(AttnProcessor())
    return components
