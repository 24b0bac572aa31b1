"""Inference speed settings for the diffusion backends (AnoGen, ECCV 2024; DualAnoDiff, CVPR 2025).

Our path: PyTorch scaled-dot-product attention (flash / memory-efficient kernels on CUDA), channels_last
memory format for the convolutions, half precision (chosen by ``loading.resolve_dtype``), batched
samples, and optionally ``torch.compile`` of the UNet. The reference path of the papers' released
code: fp32, one image at a time, the classic attention (explicit softmax(QK^T)V, diffusers'
``AttnProcessor``). The benchmark (``benchmarks/synthesis_throughput.py``) measures both.

Batch invariance: a sample's bytes must not depend on the batch it ran in. Small matrix products
(M = batch size) pick different BLAS kernels for different M, so the UNet's timestep-embedding layers
(whose rows are all equal: one timestep per step) are computed on one row and broadcast
(:func:`share_timestep_rows`); the VAE and text encoder run per sample (they run once per sample, not
per step). Tested byte-identical for batch 1 vs 4 on CPU; on CUDA, cuDNN/cuBLAS may still pick
batch-dependent kernels for the large convolutions.
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
    share_timestep_rows(components.unet)
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


def _share_rows(module) -> None:
    """Make ``module`` compute equal input rows once: (B, ...) with all rows equal -> f(x[:1]) expanded."""
    inner = module.forward

    def forward(x, *args, **kwargs):
        if x.shape[0] > 1 and bool((x == x[:1]).all()):
            out = inner(x[:1], *args, **kwargs)
            return out.expand(x.shape[0], *out.shape[1:])
        return inner(x, *args, **kwargs)

    module.forward = forward


def share_timestep_rows(unet) -> None:
    """Batch-invariant, cheaper timestep embeddings: the UNet's ``time_embedding`` and every ResNet's
    ``time_emb_proj`` run on one row when all rows are equal (parameter names are unchanged)."""
    if getattr(unet, "_anogen_shared_rows", False):
        return
    _share_rows(unet.time_embedding)
    for module in unet.modules():
        if getattr(module, "time_emb_proj", None) is not None:
            _share_rows(module.time_emb_proj)
    unet._anogen_shared_rows = True
