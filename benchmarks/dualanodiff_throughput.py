"""DualAnoDiff throughput (Jin et al., CVPR 2025): the release's way vs ours, side by side in one run.

Generation, pairs/s: the release's loop generates ONE pair per pipeline call in fp32 with classic
attention (softmax(QK^T)V); ours batches ``--batch`` pairs per call (rows interleaved, SAIM/BCM on), in
half precision on CUDA (fp32 on CPU), SDPA, channels_last on CUDA (``diffusion.speed``). Training, steps/s and peak memory: fp32 without gradient checkpointing
(the release) vs ours (half-precision frozen model + fp32 LoRA/SAIM/BCM on CUDA, gradient checkpointing).

``--size full`` is the real SD-1.5 architecture with random weights (cost equals the trained model's;
for a GPU); ``--size tiny`` the tiny test components (what a CPU box can run). Appends a section to
benchmarks/RESULTS.md naming the machine.

Usage:
    python benchmarks/dualanodiff_throughput.py --size full --pairs 16 --batch 8 --steps 100
    python benchmarks/dualanodiff_throughput.py --size tiny --pairs 8 --batch 4 --steps 10
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np
import torch

from anogen_data.concepts.dual_lora import DualTrainOptions, add_branch_adapters, train_dual_lora
from anogen_data.diffusion.loading import Components
from anogen_data.diffusion.speed import optimise_for_inference, use_reference_attention
from anogen_data.diffusion.tiny import build_full_sd15_components, build_tiny_components
from anogen_data.synthesis.dual_attention import DualModules
from anogen_data.synthesis.dualanodiff import DualAnoDiffPipeline
from _common import append_results, machine



def components(size: str, device: torch.device, dtype: torch.dtype, ours: bool) -> Components:
    """Random-weight components with both branch LoRA adapters (a loaded concept costs the same), on our
    speed path (``diffusion.speed.optimise_for_inference``) or the reference one (classic attention)."""
    parts = build_full_sd15_components(0) if size == "full" else build_tiny_components(0)
    for name in ("unet", "vae", "text_encoder"):
        parts[name].requires_grad_(False).to(device=device, dtype=dtype)
    add_branch_adapters(parts["unet"], parts["text_encoder"], rank=32 if size == "full" else 4)
    for model in (parts["unet"], parts["text_encoder"]):
        model.to(device=device, dtype=dtype)
    built = Components(**parts, model_id=size, device=device, dtype=dtype)
    return optimise_for_inference(built) if ours else use_reference_attention(built)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pairs_per_second(parts: Components, pairs: int, batch: int, steps: int) -> float:
    """Generate ``pairs`` pairs, ``batch`` per pipeline call; returns pairs/s (after one warm-up call)."""
    dual = DualModules.for_unet(parts.unet).place(parts.device, parts.dtype)
    pipe = DualAnoDiffPipeline(parts.vae, parts.text_encoder, parts.tokenizer, parts.unet, parts.scheduler, dual)
    pipe.set_progress_bar_config(disable=True)
    side = parts.resolution
    background = np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8)

    def call(n: int, seed: int) -> None:
        pipe([background] * n, [torch.Generator().manual_seed(seed + i) for i in range(n)], num_inference_steps=steps)

    call(batch, 999)
    sync(parts.device)
    start = time.perf_counter()
    for first in range(0, pairs, batch):
        call(min(batch, pairs - first), first)
    sync(parts.device)
    return pairs / (time.perf_counter() - start)


def train_speed(parts: Components, steps: int, checkpointing: bool) -> tuple[float, float | None]:
    """(steps/s, peak CUDA memory in GiB or None on CPU) of ``steps`` DualAnoDiff steps at batch 4."""
    side = parts.resolution
    shots = torch.rand(2, 7, side, side) * 2 - 1
    options = DualTrainOptions(steps=1, batch_size=4, rank=32, gradient_checkpointing=checkpointing)
    dual = DualModules.for_unet(parts.unet)
    train_dual_lora(parts, dual, shots, shots[:, :3], options)  # warm-up
    if parts.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(parts.device)
    sync(parts.device)
    start = time.perf_counter()
    train_dual_lora(parts, dual, shots, shots[:, :3], DualTrainOptions(**{**options.__dict__, "steps": steps}))
    sync(parts.device)
    rate = steps / (time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(parts.device) / 2**30 if parts.device.type == "cuda" else None
    parts.unet.disable_gradient_checkpointing()
    return rate, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("tiny", "full"), default="full" if torch.cuda.is_available() else "tiny")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10, help="denoising steps per pair (the release uses 100)")
    parser.add_argument("--train-steps", type=int, default=5)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    half = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if device.type == "cuda" else torch.float32
    reference = components(args.size, device, torch.float32, ours=False)
    ref_gen = pairs_per_second(reference, args.pairs, 1, args.steps)
    ref_train = train_speed(reference, args.train_steps, checkpointing=False)
    del reference
    ours = components(args.size, device, half, ours=True)
    our_gen = pairs_per_second(ours, args.pairs, args.batch, args.steps)
    our_train = train_speed(ours, args.train_steps, checkpointing=True)
    report(args, device, half, (ref_gen, our_gen), (ref_train, our_train))


def report(args, device, half, gen, train) -> None:
    gpu = f"GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else "no GPU"
    mem = lambda peak: "n/a (CPU)" if peak is None else f"{peak:.1f} GiB"  # noqa: E731
    lines = [
        f"\n## dualanodiff_throughput ({dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC)\n",
        f"Machine: {machine(f'{torch.get_num_threads()} torch threads', gpu)}. `python benchmarks/dualanodiff_throughput.py "
        f"--size {args.size} --pairs {args.pairs} --batch {args.batch} --steps {args.steps} --train-steps {args.train_steps}`"
        f" ({'real SD-1.5 architecture, random weights' if args.size == 'full' else 'TINY components: a CPU run, not the full-size claim'}).\n",
        "| what | release way | ours | ours / release |",
        "|---|---|---|---|",
        f"| generation, pairs/s | {gen[0]:.3f} (1 pair/call, fp32) | {gen[1]:.3f} ({args.batch} pairs/call, {str(half).split('.')[-1]}) | {gen[1] / gen[0]:.2f}x |",
        f"| training, steps/s (batch 4 pairs) | {train[0][0]:.3f} (fp32) | {train[1][0]:.3f} ({str(half).split('.')[-1]}, grad. checkpointing) | {train[1][0] / train[0][0]:.2f}x |",
        f"| training peak memory | {mem(train[0][1])} | {mem(train[1][1])} | |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    append_results(text)


if __name__ == "__main__":
    main()
