"""Diffusion synthesis throughput: the papers' reference way vs. our path, side by side in one run.

AnoGen (Gui et al., ECCV 2024) stage 2 = blended latent diffusion, 50 DDIM steps, guidance 10.
  (a) reference, as the released code runs: one image at a time, fp32, classic attention (softmax(QK^T)V).
  (b) ours: batched samples, bf16/fp16 on CUDA, SDPA attention, channels_last, shared timestep rows,
      optional torch.compile (``--compile``).
  Also FLOPs per UNet call (batch 2 = one image with guidance), the fraction of the measured matmul peak
  that (b) reaches in the UNet, and textual-inversion steps/s.
DualAnoDiff (Jin et al., CVPR 2025): both branch LoRAs (rank 32 full, 4 tiny), SAIM and BCM on.
  Generation, pairs/s: the release's loop makes ONE pair per pipeline call, fp32, classic attention;
  ours batches ``--batch-size`` pairs per call in half precision on CUDA with SDPA and channels_last.
  Training, steps/s at 4 pairs and peak CUDA memory: fp32 without gradient checkpointing (the release)
  vs. ours (half-precision frozen model, fp32 LoRA/SAIM/BCM, gradient checkpointing).

``--full`` builds the real SD-1.5 UNet/VAE/CLIP-L from their configs with random weights (costs exactly
what trained weights cost); without it the tiny test components run (a CPU smoke run). ``--side`` runs
the full architecture at a small side (CPU check of the full-size code path). ``--flops-only`` counts
FLOPs and times one UNet call per pipeline, without a throughput run. Appends ONE section naming the
machine to benchmarks/RESULTS.md.

Usage:
    python benchmarks/synthesis_throughput.py --n 8 --steps 10 --train-steps 3   # tiny, CPU
    python benchmarks/synthesis_throughput.py --full --n 16 --batch-size 8 --compile   # GPU, both
    python benchmarks/synthesis_throughput.py --full --pipeline dualanodiff --n 16 --batch-size 8
    python benchmarks/synthesis_throughput.py --full --side 64 --n 1 --steps 2 --train-steps 1   # CPU
    python benchmarks/synthesis_throughput.py --full --flops-only   # one 512 px UNet call per pipeline
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

import numpy as np
import torch

from anogen_data.diffusion.loading import Components, resolve_device, resolve_dtype
from anogen_data.diffusion.speed import optimise_for_inference, use_reference_attention
from _common import append_results
from _diffusion_bench import (build, cast, config_line, count_flops, describe, dtype_name,
                              matmul_peak, peak_memory_gib, reset_peak_memory, say, seconds, sync, unet_call)

STEPS = {"anogen": 50, "dualanodiff": 50}  # the releases' denoising steps (DualAnoDiff BCM: PNDM 50)


# ---------------------------------------------------------------- AnoGen
def anogen_images(c: Components, n: int, batch: int, steps: int) -> float:
    """Seconds to make ``n`` 1-box samples ``batch`` at a time (after one warm-up batch)."""
    from anogen_data.diffusion.blended import blended_latent_diffusion

    side, f = c.resolution, c.vae_scale_factor
    pixels = torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1
    masks = torch.zeros(batch, 1, side // f, side // f)
    masks[..., side // 8 : side // 4, side // 8 : side // 4] = 1

    def one_batch(seed: int) -> None:
        gens = [torch.Generator().manual_seed(seed + i) for i in range(batch)]
        blended_latent_diffusion(c, pixels, masks, ["a photo of a defect"] * batch, gens, steps=steps, guidance=10.0)

    one_batch(0)
    return seconds(lambda: [one_batch(k + 1) for k in range(0, n, batch)], c.device)


def ti_steps_per_s(c: Components, steps: int) -> float:
    """Textual-inversion steps/s (batch 4, masked loss) on ``c`` (after 1 warm-up step)."""
    from anogen_data.concepts.textual_inversion import Shot, learn_token

    rng, side = np.random.default_rng(0), c.resolution
    mask = np.zeros((side, side), np.uint8)
    mask[side // 4 : side // 2, side // 4 : side // 2] = 255
    shots = [Shot(rng.integers(0, 256, (side, side, 3), np.uint8), mask) for _ in range(3)]
    learn_token(c, shots, token="<warm>", steps=1, batch_size=4, seed=0)
    return steps / seconds(lambda: learn_token(c, shots, token="<bench>", steps=steps, batch_size=4, seed=0), c.device)


def anogen_lines(args, device: torch.device, ours_dtype: torch.dtype) -> list[str]:
    steps = args.steps or STEPS["anogen"]
    say("AnoGen: building the reference components")
    ref = use_reference_attention(build(args.full, device, torch.float32, args.side))
    flops = count_flops(unet_call(ref))
    lines = [f"### AnoGen: blended latent diffusion, {ref.resolution} px, {steps} DDIM steps, guidance 10",
             f"- UNet FLOPs per call with guidance (batch 2): {flops / 1e9:.2f} GFLOP"]
    if args.flops_only:
        t = seconds(unet_call(ref), device)
        return lines + [f"- one UNet call (fp32, reference attention): {t:.2f} s (no throughput run)"]
    ours = optimise_for_inference(cast(ref, ours_dtype), compile_unet=args.compile)
    say("AnoGen: (a) reference images")
    t_ref = anogen_images(ref, args.n, 1, steps)
    say("AnoGen: (b) our images")
    t_ours = anogen_images(ours, args.n, args.batch_size, steps)
    say("AnoGen: matmul peak and textual inversion")
    peak = matmul_peak(device, ours_dtype)
    reached = args.n * steps * flops / t_ours / peak
    name = dtype_name(ours_dtype)
    extras = ("channels_last, " if device.type == "cuda" else "") + ("compile, " if args.compile else "")
    return lines + [
        f"- (a) reference (batch 1, fp32, classic attention): {args.n / t_ref:.3f} images/s",
        f"- (b) ours (batch {args.batch_size}, {name}, SDPA, {extras}shared timestep rows): "
        f"{args.n / t_ours:.3f} images/s",
        f"- speed-up (b)/(a): {t_ref / t_ours:.2f}x",
        f"- (b) UNet FLOP/s vs measured {name} matmul peak ({peak / 1e12:.2f} TFLOP/s): {100 * reached:.1f}%",
        f"- textual inversion (batch 4, ours): {ti_steps_per_s(ours, args.train_steps):.2f} steps/s",
    ]


# ---------------------------------------------------------------- DualAnoDiff
def dual_components(args, device: torch.device, dtype: torch.dtype, ours: bool) -> Components:
    """Random-weight components with both branch LoRA adapters (a loaded concept costs the same)."""
    from anogen_data.concepts.dual_lora import add_branch_adapters

    parts = build(args.full, device, dtype, args.side)
    add_branch_adapters(parts.unet, parts.text_encoder, rank=32 if args.full else 4)
    for model in (parts.unet, parts.text_encoder):
        model.to(device=device, dtype=dtype)
    return optimise_for_inference(parts) if ours else use_reference_attention(parts)


def dual_pipe(parts: Components):
    from anogen_data.synthesis.dual_attention import DualModules
    from anogen_data.synthesis.dualanodiff import DualAnoDiffPipeline

    dual = DualModules.for_unet(parts.unet).place(parts.device, parts.dtype)
    pipe = DualAnoDiffPipeline(parts.vae, parts.text_encoder, parts.tokenizer, parts.unet, parts.scheduler, dual)
    pipe.set_progress_bar_config(disable=True)
    side = parts.resolution
    background = np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8)
    return lambda n, seed, steps: pipe([background] * n, [torch.Generator().manual_seed(seed + i) for i in range(n)],
                                       num_inference_steps=steps)


def pair_step_flops(parts: Components, batch: int) -> int:
    """FLOPs of one denoising step for ``batch`` pairs (UNet with both branches, SAIM, BCM, guidance):
    a 2-step call minus a 1-step call, so prompt encoding and the VAE cancel out."""
    call = dual_pipe(parts)
    return count_flops(lambda: call(batch, 0, 2)) - count_flops(lambda: call(batch, 0, 1))


def pairs_seconds(parts: Components, pairs: int, batch: int, steps: int) -> float:
    """Seconds to generate ``pairs`` pairs, ``batch`` per pipeline call (after one warm-up call)."""
    call = dual_pipe(parts)
    call(batch, 999, steps)
    return seconds(lambda: [call(min(batch, pairs - k), k, steps) for k in range(0, pairs, batch)], parts.device)


def train_speed(parts: Components, steps: int, checkpointing: bool) -> tuple[float, float | None]:
    """(steps/s, peak CUDA GiB or None on CPU) of ``steps`` DualAnoDiff training steps at 4 pairs."""
    from anogen_data.concepts.dual_lora import DualTrainOptions, train_dual_lora
    from anogen_data.synthesis.dual_attention import DualModules

    side = parts.resolution
    shots = torch.rand(2, 7, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1
    options = DualTrainOptions(steps=1, batch_size=4, rank=32, gradient_checkpointing=checkpointing)
    dual = DualModules.for_unet(parts.unet)
    train_dual_lora(parts, dual, shots, shots[:, :3], options)  # warm-up
    reset_peak_memory(parts.device)
    timed = DualTrainOptions(**{**options.__dict__, "steps": steps})
    rate = steps / seconds(lambda: train_dual_lora(parts, dual, shots, shots[:, :3], timed), parts.device)
    parts.unet.disable_gradient_checkpointing()
    return rate, peak_memory_gib(parts.device)


def dual_lines(args, device: torch.device, half: torch.dtype) -> list[str]:
    steps, name = args.steps or STEPS["dualanodiff"], dtype_name(half)
    say("DualAnoDiff: building the reference components")
    reference = dual_components(args, device, torch.float32, ours=False)
    head = f"### DualAnoDiff: {reference.resolution} px, {steps} denoising steps per pair, guidance 2.0"
    if args.flops_only:
        flops = pair_step_flops(reference, 1)
        t = seconds(lambda: dual_pipe(reference)(1, 0, 1), device)
        return [head, f"- FLOPs per denoising step of one pair (both branches, SAIM, BCM, guidance): "
                      f"{flops / 1e9:.2f} GFLOP",
                f"- one 1-step pipeline call for one pair (fp32, reference attention): {t:.2f} s (no throughput run)"]
    flops = pair_step_flops(reference, 1)  # counted on classic attention, as AnoGen's
    say("DualAnoDiff: release-way pairs and training")
    t_ref = pairs_seconds(reference, args.n, 1, steps)
    ref_train = train_speed(reference, args.train_steps, checkpointing=False)
    del reference
    say("DualAnoDiff: our pairs and training")
    ours = dual_components(args, device, half, ours=True)
    t_ours = pairs_seconds(ours, args.n, args.batch_size, steps)
    our_train = train_speed(ours, args.train_steps, checkpointing=True)
    peak = matmul_peak(device, half)
    reached = args.n * steps * flops / t_ours / peak
    mem = lambda gib: "n/a (CPU)" if gib is None else f"{gib:.1f} GiB"  # noqa: E731
    return [head, "", "| what | release way | ours | ours / release |", "|---|---|---|---|",
            f"| generation, pairs/s | {args.n / t_ref:.3f} (1 pair/call, fp32, classic attention) | "
            f"{args.n / t_ours:.3f} ({args.batch_size} pairs/call, {name}, SDPA) | {t_ref / t_ours:.2f}x |",
            f"| training, steps/s (4 pairs) | {ref_train[0]:.3f} (fp32) | {our_train[0]:.3f} "
            f"({name} frozen, grad. checkpointing) | {our_train[0] / ref_train[0]:.2f}x |",
            f"| training peak memory | {mem(ref_train[1])} | {mem(our_train[1])} | |",
            "", f"- ours, denoising FLOP/s vs measured {name} matmul peak ({peak / 1e12:.2f} TFLOP/s): "
                f"{100 * reached:.1f}%"]


# ---------------------------------------------------------------- main
def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pipeline", choices=("anogen", "dualanodiff", "both"), default="both")
    p.add_argument("--full", action="store_true", help="full-size SD-1.5 architecture (random weights)")
    p.add_argument("--side", type=int, default=None, help="image side in px (default: native, 512 full / 64 tiny)")
    p.add_argument("--flops-only", action="store_true", help="count FLOPs and time one call per pipeline")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto", help="our path's dtype (auto: bf16/fp16 on CUDA, fp32 on CPU)")
    p.add_argument("--n", type=int, default=8, help="images (AnoGen) / pairs (DualAnoDiff) per path")
    p.add_argument("--batch-size", type=int, default=4, help="our path's batch")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: AnoGen 50, DualAnoDiff 100)")
    p.add_argument("--train-steps", type=int, default=5, help="timed textual-inversion / dual-LoRA steps")
    p.add_argument("--compile", action="store_true", help="torch.compile the UNet on AnoGen's path (b)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    p.add_argument("--no-append", action="store_true", help="print only; do not append to RESULTS.md")
    return p.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    ours_dtype = resolve_dtype(args.dtype, device)
    side = args.side or (512 if args.full else 64)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## synthesis_throughput — {stamp}", f"Machine: {describe(device)}",
             f"Command: `python benchmarks/synthesis_throughput.py {' '.join(argv)}`",
             config_line(args.full, side, device)]
    if args.pipeline in ("anogen", "both"):
        lines += ["", *anogen_lines(args, device, ours_dtype)]
    if args.pipeline in ("dualanodiff", "both"):
        lines += ["", *dual_lines(args, device, ours_dtype)]
    sync(device)
    section = "\n".join(lines) + "\n"
    print(section)
    if not args.no_append:
        append_results(section)


if __name__ == "__main__":
    main(sys.argv[1:])
