"""AnoGen synthesis throughput: the papers' reference way vs. our path, measured side by side in one run.

AnoGen (Gui et al., ECCV 2024) stage 2 = blended latent diffusion, 50 DDIM steps, guidance 10.
(a) reference, as the released code runs: one image at a time, fp32, classic attention (softmax(QK^T)V).
(b) ours: batched samples, bf16/fp16 on CUDA, SDPA attention, channels_last, shared timestep rows,
    optional torch.compile.
Also: FLOPs per UNet call (torch.utils.flop_counter, batch 2 = one image with guidance), the fraction
of the device's measured matmul peak that (b) reaches in the UNet, and textual-inversion steps/s.

``--full`` builds the real SD-1.5 UNet/VAE/CLIP-L from their configs with random weights (costs exactly
what trained weights cost); without it the tiny test config runs (CPU smoke). ``--flops-only`` with
``--full`` counts one 512 px UNet call and times it, without a whole run (for CPUs).

Usage:
    python benchmarks/synthesis_throughput.py                      # tiny config, CPU
    python benchmarks/synthesis_throughput.py --full --n 16 --batch-size 8 --compile   # GPU
    python benchmarks/synthesis_throughput.py --full --flops-only  # one 512 px UNet call on CPU
"""

from __future__ import annotations

import argparse
import copy
import time
from datetime import datetime, timezone

import torch

from anogen_data.diffusion.blended import blended_latent_diffusion
from anogen_data.diffusion.loading import Components, resolve_device, resolve_dtype
from anogen_data.diffusion.speed import optimise_for_inference, use_reference_attention
from anogen_data.diffusion.tiny import build_full_sd15_components, build_tiny_components
from _common import append_results, machine



def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(full: bool, device, dtype) -> Components:
    parts = build_full_sd15_components(0) if full else build_tiny_components(0)
    for name in ("unet", "vae", "text_encoder"):
        parts[name].requires_grad_(False).to(device=device, dtype=dtype)
    return Components(**parts, model_id="sd15-random" if full else "tiny", device=device, dtype=dtype)


def cast(c: Components, dtype) -> Components:
    """A copy of ``c`` in ``dtype`` (weights copied, so the reference keeps its own modules)."""
    parts = {n: copy.deepcopy(getattr(c, n)).to(dtype=dtype) for n in ("unet", "vae", "text_encoder")}
    return Components(**parts, tokenizer=copy.deepcopy(c.tokenizer), scheduler=c.scheduler,
                      model_id=c.model_id, device=c.device, dtype=dtype)


def unet_flops(c: Components) -> int:
    """FLOPs of one UNet call with guidance (batch 2) at the model's resolution."""
    from torch.utils.flop_counter import FlopCounterMode

    side = c.unet.config.sample_size
    x = torch.randn(2, 4, side, side, device=c.device, dtype=c.dtype)
    ctx = torch.randn(2, 77, c.unet.config.cross_attention_dim, device=c.device, dtype=c.dtype)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        c.unet(x, torch.tensor(500, device=c.device), ctx)
    return counter.get_total_flops()


def matmul_peak(device, dtype) -> float:
    """Measured dense matmul FLOP/s for ``dtype`` on ``device`` (best of 5)."""
    n = 8192 if device.type == "cuda" else 1024
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(5):
        sync(device)
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - start) / 10)
    return 2 * n**3 / best


def run_images(c: Components, n: int, batch: int, steps: int) -> float:
    """Seconds to make ``n`` 1-box samples ``batch`` at a time (after one warm-up batch)."""
    side = c.resolution
    pixels = torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1
    masks = torch.zeros(batch, 1, side // c.vae_scale_factor, side // c.vae_scale_factor)
    masks[..., side // 8 : side // 4, side // 8 : side // 4] = 1
    prompts = ["a photo of a defect"] * batch

    def one_batch(seed: int) -> None:
        gens = [torch.Generator().manual_seed(seed + i) for i in range(batch)]
        blended_latent_diffusion(c, pixels, masks, prompts, gens, steps=steps, guidance=10.0)

    one_batch(0)
    sync(c.device)
    start = time.perf_counter()
    for k in range(0, n, batch):
        one_batch(k + 1)
    sync(c.device)
    return time.perf_counter() - start


def ti_steps_per_s(c: Components, steps: int) -> float:
    """Textual-inversion steps/s (batch 4, masked loss) on ``c`` (after 1 warm-up step)."""
    import numpy as np

    from anogen_data.concepts.textual_inversion import Shot, learn_token

    rng = np.random.default_rng(0)
    side = c.resolution
    mask = np.zeros((side, side), np.uint8)
    mask[side // 4 : side // 2, side // 4 : side // 2] = 255
    shots = [Shot(rng.integers(0, 256, (side, side, 3), np.uint8), mask) for _ in range(3)]
    learn_token(c, shots, token="<warm>", steps=1, batch_size=4, seed=0)
    sync(c.device)
    start = time.perf_counter()
    learn_token(c, shots, token="<bench>", steps=steps, batch_size=4, seed=0)
    sync(c.device)
    return steps / (time.perf_counter() - start)


def describe(device) -> str:
    import diffusers

    gpu = f"GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else "no GPU"
    return machine(f"{torch.get_num_threads()} torch threads", gpu, f"diffusers {diffusers.__version__}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--full", action="store_true", help="full-size SD-1.5 architecture (random weights)")
    p.add_argument("--flops-only", action="store_true", help="with --full: count and time one UNet call")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto", help="our path's dtype (auto: bf16/fp16 on CUDA, fp32 on CPU)")
    p.add_argument("--n", type=int, default=8, help="images per path")
    p.add_argument("--batch-size", type=int, default=4, help="our path's batch")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--ti-steps", type=int, default=10)
    p.add_argument("--compile", action="store_true", help="torch.compile the UNet on our path")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    p.add_argument("--no-append", action="store_true", help="print only; do not append to RESULTS.md")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    ours_dtype = resolve_dtype(args.dtype, device)
    ref = build(args.full, device, torch.float32)
    use_reference_attention(ref)
    flops = unet_flops(ref)
    lines = [f"- config: {'full SD-1.5 (random weights)' if args.full else 'tiny (diffusers test sizes; CPU smoke, NOT SD-1.5)'}, "
             f"{ref.resolution} px, {args.steps} DDIM steps, guidance 10",
             f"- UNet FLOPs per call with guidance (batch 2): {flops / 1e9:.2f} GFLOP"]
    if args.flops_only:
        sync(device)
        start = time.perf_counter()
        unet_flops(ref)
        lines.append(f"- one UNet call (fp32, reference attention): {time.perf_counter() - start:.2f} s "
                     "(FLOP-count path only; no throughput run)")
    else:
        ours = optimise_for_inference(cast(ref, ours_dtype), compile_unet=args.compile)
        t_ref = run_images(ref, args.n, 1, args.steps)
        t_ours = run_images(ours, args.n, args.batch_size, args.steps)
        peak = matmul_peak(device, ours_dtype)
        reached = args.n * args.steps * flops / t_ours / peak
        lines += [
            f"- (a) reference (batch 1, fp32, classic attention): {args.n / t_ref:.3f} images/s",
            f"- (b) ours (batch {args.batch_size}, {str(ours_dtype).replace('torch.', '')}, SDPA, "
            f"{'channels_last, ' if device.type == 'cuda' else ''}{'compile, ' if args.compile else ''}shared timestep rows): "
            f"{args.n / t_ours:.3f} images/s",
            f"- speed-up (b)/(a): {t_ref / t_ours:.2f}x",
            f"- (b) UNet FLOP/s vs measured {str(ours_dtype).replace('torch.', '')} matmul peak "
            f"({peak / 1e12:.2f} TFLOP/s): {100 * reached:.1f}%",
            f"- textual inversion (batch 4, ours): {ti_steps_per_s(ours, args.ti_steps):.2f} steps/s",
        ]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = "\n".join([f"\n## synthesis_throughput (AnoGen) — {stamp}", f"Machine: {describe(device)}",
                         f"Command: `python benchmarks/synthesis_throughput.py {' '.join(_argv())}`", *lines, ""])
    print(section)
    if not args.no_append:
        append_results(section)


def _argv() -> list[str]:
    import sys

    return sys.argv[1:]


if __name__ == "__main__":
    main()
