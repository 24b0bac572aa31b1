"""What the diffusion throughput benchmark shares between AnoGen (Gui et al., ECCV 2024) and DualAnoDiff
(Jin et al., CVPR 2025): building random-weight components, device sync, FLOP counting, the measured
matmul peak and the machine line.

Components are the tiny test ones (``anogen_data.diffusion.tiny``, 64 px; a CPU smoke run, NOT SD-1.5)
or, with ``full``, the real SD-1.5 UNet/VAE/CLIP-L from their configs with random weights (costs exactly
what trained weights cost; 512 px). ``side`` runs the same architecture at a smaller square side (a CPU
check that the full-size code path works end to end; not a throughput claim).
"""

from __future__ import annotations

import copy
import sys
import time

import torch

from anogen_data.diffusion.loading import Components
from anogen_data.diffusion.tiny import build_full_sd15_components, build_tiny_components
from _common import machine

MODULES = ("unet", "vae", "text_encoder")


def say(message: str) -> None:
    """Progress on stderr (full-size runs take minutes per phase); the section goes to stdout."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work (timings must include it); no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(full: bool, device: torch.device, dtype: torch.dtype, side: int | None = None) -> Components:
    """Frozen random-weight components (seed 0) on ``device`` in ``dtype``.

    Args:
        full: SD-1.5 architecture (860 M-parameter UNet) instead of the tiny test one.
        side: square image side in pixels (None: the model's native 512 / 64); must be a multiple of
            the VAE's scale factor (8 full, 2 tiny).
    """
    parts = build_full_sd15_components(0) if full else build_tiny_components(0)
    for name in MODULES:
        parts[name].requires_grad_(False).to(device=device, dtype=dtype)
    built = Components(**parts, model_id="sd15-random" if full else "tiny", device=device, dtype=dtype)
    if side is not None:  # Components.resolution and every pipeline default read the UNet's sample_size
        if side % built.vae_scale_factor:
            raise SystemExit(f"--side {side} is not a multiple of the VAE scale factor {built.vae_scale_factor}")
        built.unet.register_to_config(sample_size=side // built.vae_scale_factor)
    return built


def cast(c: Components, dtype: torch.dtype) -> Components:
    """A copy of ``c`` in ``dtype`` (weights copied, so the reference keeps its own modules)."""
    parts = {n: copy.deepcopy(getattr(c, n)).to(dtype=dtype) for n in MODULES}
    return Components(**parts, tokenizer=copy.deepcopy(c.tokenizer), scheduler=c.scheduler,
                      model_id=c.model_id, device=c.device, dtype=dtype)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def count_flops(fn) -> int:
    """FLOPs of calling ``fn()`` once (``torch.utils.flop_counter``; matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return counter.get_total_flops()


def unet_call(c: Components):
    """A function making one UNet call with guidance (batch 2) at the components' resolution."""
    side = c.unet.config.sample_size
    x = torch.randn(2, 4, side, side, device=c.device, dtype=c.dtype)
    ctx = torch.randn(2, 77, c.unet.config.cross_attention_dim, device=c.device, dtype=c.dtype)
    return lambda: c.unet(x, torch.tensor(500, device=c.device), ctx)


def seconds(fn, device: torch.device) -> float:
    """Wall seconds of one ``fn()`` call, queued device work included."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    """Measured dense matmul FLOP/s for ``dtype`` on ``device`` (best of 5 rounds of 10 products)."""
    n = 8192 if device.type == "cuda" else 1024
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = min(seconds(lambda: [a @ b for _ in range(10)], device) for _ in range(5)) / 10
    return 2 * n**3 / best


def peak_memory_gib(device: torch.device) -> float | None:
    """Peak CUDA memory allocated since the last ``reset_peak_memory`` (None on CPU)."""
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def describe(device: torch.device) -> str:
    """The machine line: CPU, cores, Python, torch, torch threads, GPU, diffusers, load average."""
    import diffusers

    gpu = f"GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else "no GPU"
    return machine(f"{torch.get_num_threads()} torch threads", gpu, f"diffusers {diffusers.__version__}")


def config_line(full: bool, side: int, device: torch.device) -> str:
    """What ran, said plainly: the size claim is only made for full SD-1.5 at 512 px."""
    if not full:
        what = "TINY components (diffusers test sizes, NOT SD-1.5): a smoke run, not the full-size claim"
    elif side != 512:
        what = f"full SD-1.5 architecture (random weights) at {side} px: a code-path check, not the 512 px claim"
    else:
        what = "full SD-1.5 architecture (random weights), 512 px"
    return f"- ran: {what}; device {device.type.upper()}"
