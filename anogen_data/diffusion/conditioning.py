"""Text conditioning and per-row LoRA routing shared by AnoGen and DualAnoDiff (one place for each).

- :func:`encode_prompts` is the ONE prompt encoder of the project: AnoGen's blended sampler
  (Gui et al., ECCV 2024) and DualAnoDiff's training and pipeline (Jin et al., CVPR 2025) both call it.
  Each distinct (prompt, adapter) pair is encoded alone (batch 1), so a sample's embedding never depends
  on its batch-mates (BLAS picks kernels by the batch size).
- :func:`branch_adapters` routes row ``i`` of every peft LoRA layer to adapter ``names[i]`` (peft's
  mixed-batch forward, usable with gradients); DualAnoDiff's two UNet branches use it.

Both ``concepts/dual_lora.py`` (training) and ``synthesis/dualanodiff.py`` (generation) import this
module; neither imports the other.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from functools import partial

import torch

WHOLE, PART = "whole", "part"  # DualAnoDiff's branches: the whole anomalous image, the anomaly part on black
BRANCHES = (WHOLE, PART)


def _inject_adapter_names(module, args, kwargs, adapter_names):
    return args, {**kwargs, "adapter_names": adapter_names}


@contextlib.contextmanager
def branch_adapters(model, adapter_names: Sequence[str]) -> Iterator[None]:
    """Within the block, row ``i`` of every LoRA layer's input uses adapter ``adapter_names[i]``.

    This is peft's mixed-batch LoRA forward (``adapter_names`` keyword of ``LoraLayer.forward``),
    installed with our own hooks because peft only offers it for inference; gradients flow through it.
    """
    from peft.tuners.lora import LoraLayer

    hook = partial(_inject_adapter_names, adapter_names=list(adapter_names))
    handles = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in model.modules() if isinstance(m, LoraLayer)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def pair_adapters(pairs: int, whole: str = WHOLE, part: str = PART) -> list[str]:
    """Adapter name per row of an interleaved batch of ``pairs`` pairs: [whole, part, whole, part, ...]."""
    return [whole, part] * pairs


def _has_lora(model) -> bool:
    from peft.tuners.lora import LoraLayer

    return any(isinstance(m, LoraLayer) for m in model.modules())


def encode_prompts(text_encoder, tokenizer, prompts: Sequence[str], adapters: Sequence[str] | None = None,
                   dtype: torch.dtype | None = None) -> torch.Tensor:
    """CLIP last hidden states (len(prompts), 77, width) of ``prompts``.

    Args:
        text_encoder, tokenizer: a ``CLIPTextModel`` (with or without peft LoRA) and its tokenizer.
        prompts: one prompt per output row.
        adapters: None (the text encoder's active adapters, or none) or one LoRA adapter name per row.
        dtype: cast the result (e.g. the UNet's dtype); None keeps the text encoder's.

    Each distinct (prompt, adapter) is encoded alone, so rows are batch-invariant. Gradients flow when
    enabled by the caller (DualAnoDiff trains a text-encoder LoRA; AnoGen's token vector).
    """
    if adapters is not None and len(adapters) != len(prompts):
        raise ValueError(f"need one adapter per prompt, got {len(adapters)} for {len(prompts)}")
    keys = list(zip(prompts, adapters if adapters is not None else [None] * len(prompts), strict=True))
    routed = adapters is not None and _has_lora(text_encoder)
    unknown = set(adapters or ()) - set(getattr(text_encoder, "peft_config", {})) if routed else set()
    if unknown:  # peft's mixed-batch forward would silently skip them (base weights only)
        raise ValueError(f"text encoder has no LoRA adapter(s) {sorted(unknown)}; it has {sorted(text_encoder.peft_config)}")
    cache: dict[tuple[str, str | None], torch.Tensor] = {}
    for prompt, adapter in dict.fromkeys(keys):
        ids = tokenizer([prompt], padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids.to(text_encoder.device)
        with branch_adapters(text_encoder, [adapter]) if routed else contextlib.nullcontext():
            cache[(prompt, adapter)] = text_encoder(ids)[0]
    out = torch.cat([cache[k] for k in keys])
    return out if dtype is None else out.to(dtype)
