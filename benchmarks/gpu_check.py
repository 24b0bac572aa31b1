"""GPU check of the two diffusion backends at full size: speed against the release-style loop, and sanity.

AnoGen (Gui et al., ECCV 2024) and DualAnoDiff (Jin et al., CVPR 2025) on the real SD-1.5 architectures
(UNet 860 M, VAE, CLIP-L) with RANDOM weights at 512 px (costs exactly what trained weights cost; nothing
is downloaded). Our path runs the frozen model in bf16 (text path of textual inversion in fp32, trainable
LoRA/SAIM/BCM in fp32); the release-style path runs everything in fp32 at the release's batch, measured in
the same run on the same GPU:

| phase | ours | release-style reference |
|---|---|---|
| ``ti_train``: AnoGen textual inversion | batch 2, bf16 UNet, SDPA | fp32, batch 2 (v1-finetune.yaml), classic attention (LDM code) |
| ``anogen_generate``: 32 samples, 50 DDIM steps, guidance 10 | best batch of 8/16/32, bf16, SDPA | fp32, ONE image per call, classic attention |
| ``dual_train``: DualAnoDiff LoRA + SAIM + BCM | 4 pairs, bf16 frozen, gradient checkpointing | fp32, 2 pairs (release script), SDPA (diffusers' LoRA processor) |
| ``dual_generate``: 8 pairs, PNDM 50 steps, guidance 2, BCM on | 8 pairs per call, bf16, SDPA | fp32, ONE pair per call, SDPA |

Reference generation is timed at 1 and 10 steps and extrapolated linearly to 50 (per-step cost is
constant); training phases stop at their step count or time cap, whichever comes first (the JSON says
which). Per phase: throughput, its ratio to the reference, model FLOPs counted by
``torch.utils.flop_counter`` (training: one whole step, UNet fwd + bwd dominating; generation: one
denoising step, i.e. a 2-step minus a 1-step call), the fraction of the GPU's bf16 dense peak (spec
sheet, and the matmul peak measured here) and peak CUDA memory. Checks: every decoded latent, loss and
trained parameter is finite; one seed gives the same bytes twice (AnoGen and DualAnoDiff, our path).

Writes ``$OUT/gpu_check.json`` (after every phase, so a timeout keeps what finished) and
``$OUT/gpu_check.md`` (a table header and one row) when ``OUT`` (or ``--out``) is set; prints both.
Exit status 1 when a check fails or a phase errors.

Usage:
    bash benchmarks/gpu_check.sh                 # GPU box: install the lock minus torch, then this script
    python benchmarks/gpu_check.py --dry-run     # CPU, tiny components, seconds (tested)
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from _diffusion_bench import build, describe, matmul_peak, peak_memory_gib, reset_peak_memory, say, seconds, sync

# Dense bf16 tensor-core peaks from the vendors' spec sheets (no sparsity), FLOP/s, by name fragment.
SPEC_BF16_PEAK = (("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("A100", 312e12),
                  ("L40S", 362e12), ("L4", 121e12), ("A10", 125e12), ("4090", 165e12))


@dataclass(frozen=True)
class Plan:
    """Sizes and caps of one run (``FULL`` on a GPU, ``DRY`` on CPU)."""

    full: bool
    side: int
    ti_steps: int
    ti_ref_steps: int
    gen_n: int
    gen_batches: tuple[int, ...]
    gen_steps: int
    ref_steps: int  # reference generation: timed at 1 and this many steps, extrapolated to gen_steps
    dual_steps: int
    dual_ref_steps: int
    dual_pairs: int
    dual_gen_steps: int
    train_cap_s: float  # a training phase stops after this many seconds even if steps remain
    rank: int


FULL = Plan(True, 512, 300, 20, 32, (8, 16, 32), 50, 10, 200, 10, 8, 50, 75.0, 32)
DRY = Plan(False, 16, 2, 1, 2, (1, 2), 2, 2, 2, 1, 2, 2, 60.0, 4)


class _Cap(Exception):
    """Raised from a training callback when the phase's time cap is reached."""


def spec_peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in SPEC_BF16_PEAK if key in name), None)


def flops_of(fn) -> int:
    """FLOPs of one ``fn()`` (matmuls and convolutions, backward included when ``fn`` runs one)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def timed_steps(run, steps: int, cap_s: float, device) -> tuple[int, float, list[float]]:
    """Run a training function ``run(steps, on_step)`` until done or ``cap_s``: (steps done, seconds, losses)."""
    losses: list[float] = []
    sync(device)
    start = time.perf_counter()

    def on_step(step, loss):
        losses.append(loss)
        if time.perf_counter() - start > cap_s:
            raise _Cap

    try:
        run(steps, on_step)
    except _Cap:
        pass
    sync(device)
    return len(losses), time.perf_counter() - start, losses


class Finite:
    """Watches every VAE decoder output for non-finite values."""

    def __init__(self) -> None:
        self.ok, self.handles = True, []

    def watch(self, vae) -> None:
        self.handles.append(vae.decoder.register_forward_hook(self._hook))

    def _hook(self, module, args, output):
        self.ok = self.ok and bool(torch.isfinite(output).all())

    def check(self, *tensors) -> None:
        self.ok = self.ok and all(bool(torch.isfinite(t).all()) for t in tensors)


# ---------------------------------------------------------------- inputs
def shots(plan: Plan, n: int = 2):
    from anogen_data.concepts.textual_inversion import Shot

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        image = rng.integers(0, 256, (plan.side, plan.side, 3), np.uint8)
        mask = np.zeros((plan.side, plan.side), np.uint8)
        a, b = plan.side // 4, plan.side // 2 + i
        mask[a:b, a:b] = 255
        image[mask > 0] = (200, 40, 30)
        out.append(Shot(image=image, mask=mask))
    return out


def window_batch(c, batch: int):
    side, f = c.resolution, c.vae_scale_factor
    pixels = torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1
    masks = torch.zeros(batch, 1, side // f, side // f)
    masks[..., side // f // 4 : side // f // 2, side // f // 4 : side // f // 2] = 1
    return pixels, masks


# ---------------------------------------------------------------- AnoGen
def ti_phase(c, plan: Plan, steps: int, batch: int, finite: Finite, token: str, count: bool):
    """Textual inversion on ``c``: (result dict, FLOPs of one step or None)."""
    from anogen_data.concepts.textual_inversion import learn_token

    data = shots(plan)
    flops = None
    if count:
        flops = flops_of(lambda: learn_token(copy.deepcopy(c), data, token=token + "f", steps=1, batch_size=batch))
    learn_token(c, data, token=token + "w", steps=1, batch_size=batch)  # warm-up (kernels, allocator)
    reset_peak_memory(c.device)
    holder = {}

    def run(n, on_step):
        holder["learned"] = learn_token(c, data, token=token, steps=n, batch_size=batch, on_step=on_step)

    done, secs, losses = timed_steps(run, steps, plan.train_cap_s, c.device)
    finite.check(torch.tensor(losses))
    if "learned" in holder:
        finite.check(holder["learned"].vector)
    return {"steps": done, "batch": batch, "seconds": round(secs, 3), "steps_per_s": done / secs,
            "samples_per_s": done * batch / secs, "peak_gib": peak_memory_gib(c.device), "capped": done < steps}, flops


def anogen_call(c, batch: int, steps: int, seed: int = 0) -> torch.Tensor:
    from anogen_data.diffusion.blended import blended_latent_diffusion

    pixels, masks = window_batch(c, batch)
    gens = [torch.Generator().manual_seed(seed + i) for i in range(batch)]
    return blended_latent_diffusion(c, pixels, masks, ["a photo of a defect"] * batch, gens, steps=steps, guidance=10.0)


def anogen_generate(c, plan: Plan) -> dict:
    """Pick the fastest batch by a short run, then make ``gen_n`` samples at it."""
    probe = {}
    for batch in plan.gen_batches:
        anogen_call(c, batch, 1)  # warm-up at this shape
        probe[batch] = seconds(lambda b=batch: anogen_call(c, b, 3), c.device) / batch
    best = min(probe, key=probe.get)
    step_flops = flops_of(lambda: anogen_call(c, best, 2)) - flops_of(lambda: anogen_call(c, best, 1))
    reset_peak_memory(c.device)
    calls = math.ceil(plan.gen_n / best)
    secs = seconds(lambda: [anogen_call(c, best, plan.gen_steps, seed=100 * k) for k in range(calls)], c.device)
    return {"samples": calls * best, "batch": best, "batch_probe_s_per_sample_3_steps": probe, "seconds": round(secs, 3),
            "samples_per_s": calls * best / secs, "flops_per_denoising_step": step_flops,
            "achieved_flops": calls * plan.gen_steps * step_flops / secs, "peak_gib": peak_memory_gib(c.device)}


def extrapolated_seconds(call, steps: int, target: int, device) -> float:
    """Seconds of one call at ``target`` steps from timed 1-step and ``steps``-step calls."""
    call(1)  # warm-up
    one, many = seconds(lambda: call(1), device), seconds(lambda: call(steps), device)
    return one + (many - one) * (target - 1) / max(1, steps - 1)


# ---------------------------------------------------------------- DualAnoDiff
def dual_inputs(plan: Plan):
    from anogen_data.concepts.dual_lora import shot_tensors
    from anogen_data.diffusion.dual_reference import to_tensor

    data = shots(plan)
    images, masks = [s.image for s in data], [s.mask for s in data]
    return shot_tensors(images, masks, plan.side), to_tensor(images, plan.side)


def dual_train(c, plan: Plan, steps: int, pairs: int, checkpointing: bool, finite: Finite, count: bool):
    """DualAnoDiff training on ``c`` (adapters added here): (result, FLOPs of one step or None, DualModules)."""
    from anogen_data.concepts.dual_lora import DualTrainOptions, add_branch_adapters, seeded, train_dual_lora
    from anogen_data.synthesis.dual_attention import DualModules

    with seeded(0):
        add_branch_adapters(c.unet, c.text_encoder, plan.rank)
        dual = DualModules.for_unet(c.unet)
    shot_t, refs = dual_inputs(plan)
    options = DualTrainOptions(steps=1, batch_size=pairs, rank=plan.rank, gradient_checkpointing=checkpointing,
                               resolution=plan.side)
    flops = flops_of(lambda: train_dual_lora(c, dual, shot_t, refs, options)) if count else None
    train_dual_lora(c, dual, shot_t, refs, options)  # warm-up
    reset_peak_memory(c.device)

    def run(n, on_step):
        train_dual_lora(c, dual, shot_t, refs, replace(options, steps=n), on_step)

    done, secs, losses = timed_steps(run, steps, plan.train_cap_s, c.device)
    trained = [p for p in c.unet.parameters() if p.requires_grad] + list(dual.parameters())
    finite.check(torch.tensor(losses), *trained)
    return ({"steps": done, "pairs": pairs, "seconds": round(secs, 3), "steps_per_s": done / secs,
             "pairs_per_s": done * pairs / secs, "peak_gib": peak_memory_gib(c.device), "capped": done < steps,
             "gradient_checkpointing": checkpointing}, flops, dual)


def dual_pipe(c, dual):
    from anogen_data.synthesis.dualanodiff import DualAnoDiffPipeline, make_scheduler

    pipe = DualAnoDiffPipeline(c.vae, c.text_encoder, c.tokenizer, c.unet, make_scheduler("pndm", c.scheduler.config),
                               dual.place(c.device, c.dtype))
    pipe.set_progress_bar_config(disable=True)
    background = np.random.default_rng(1).integers(0, 255, (c.resolution, c.resolution, 3), dtype=np.uint8)

    def call(pairs: int, steps: int, seed: int = 0):
        return pipe([background] * pairs, [torch.Generator().manual_seed(seed + i) for i in range(pairs)],
                    num_inference_steps=steps, guidance_scale=2.0, resolution=c.resolution)

    return call


def dual_generate(call, c, plan: Plan) -> dict:
    call(plan.dual_pairs, 1)  # warm-up
    step_flops = flops_of(lambda: call(plan.dual_pairs, 2)) - flops_of(lambda: call(plan.dual_pairs, 1))
    reset_peak_memory(c.device)
    secs = seconds(lambda: call(plan.dual_pairs, plan.dual_gen_steps, seed=10), c.device)
    return {"pairs": plan.dual_pairs, "seconds": round(secs, 3), "pairs_per_s": plan.dual_pairs / secs,
            "flops_per_denoising_step": step_flops, "achieved_flops": plan.dual_gen_steps * step_flops / secs,
            "peak_gib": peak_memory_gib(c.device)}


# ---------------------------------------------------------------- driver
class Report:
    """The JSON being built; written to ``out`` after every phase."""

    def __init__(self, out: Path | None, plan: Plan, device: torch.device, argv: list[str]) -> None:
        self.out, self.start = out, time.perf_counter()
        gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (no GPU)"
        self.data = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "device": gpu,
                     "machine": describe(device),
                     "command": "python benchmarks/gpu_check.py " + " ".join(argv),
                     "mode": "full SD-1.5 architecture, random weights" if plan.full else "DRY RUN: tiny components on CPU",
                     "plan": asdict(plan), "phases": {}, "errors": {}, "checks": {}}

    def phase(self, name: str, fn):
        say(f"{name} ...")
        try:
            self.data["phases"][name] = fn()
        except Exception as error:  # one failing phase must not hide the others' numbers
            self.data["errors"][name] = f"{type(error).__name__}: {error}"
            say(f"{name} FAILED: {self.data['errors'][name]}")
        self.save()

    def save(self) -> None:
        self.data["wall_s"] = round(time.perf_counter() - self.start, 1)
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "gpu_check.json").write_text(json.dumps(self.data, indent=2, default=str) + "\n")


def ratio(ours: dict | None, ref: dict | None, key: str) -> float | None:
    if not ours or not ref or not ref.get(key):
        return None
    return ours[key] / ref[key]


def summarise(data: dict, peak_spec: float | None, peak_measured: float | None) -> None:
    p = data["phases"]
    pairs = {"ti_train": ("ti_train_ref", "samples_per_s"), "anogen_generate": ("anogen_generate_ref", "samples_per_s"),
             "dual_train": ("dual_train_ref", "pairs_per_s"), "dual_generate": ("dual_generate_ref", "pairs_per_s")}
    data["speedup_vs_release"] = {k: ratio(p.get(k), p.get(ref), key) for k, (ref, key) in pairs.items()}
    data["bf16_peak_flops"] = {"spec": peak_spec, "measured_matmul": peak_measured}
    fractions = {}
    for name in pairs:
        achieved = (p.get(name) or {}).get("achieved_flops")
        if achieved:
            fractions[name] = {"of_spec": achieved / peak_spec if peak_spec else None,
                               "of_measured_matmul": achieved / peak_measured if peak_measured else None}
    data["fraction_of_bf16_peak"] = fractions
    data["peak_gib"] = {k: v.get("peak_gib") for k, v in p.items() if isinstance(v, dict)}
    data["ok"] = not data["errors"] and all(data["checks"].values())


def markdown(data: dict) -> str:
    s, f, p = data["speedup_vs_release"], data["fraction_of_bf16_peak"], data["phases"]

    def num(value, fmt="{:.2f}"):
        return "n/a" if value is None else fmt.format(value)

    def rate(name, key):
        return num((p.get(name) or {}).get(key), "{:.2f}")

    def frac(name):
        return num((f.get(name) or {}).get("of_spec") or (f.get(name) or {}).get("of_measured_matmul"), "{:.0%}")

    gib = [v for v in data["peak_gib"].values() if v is not None]
    header = ("| date | machine | TI samples/s (x release) | AnoGen img/s @batch (x release, % bf16 peak) | "
              "DualAnoDiff train pairs/s (x release, % peak) | DualAnoDiff pairs/s (x release, % peak) | "
              "peak GiB | finite | same bytes |\n|---|---|---|---|---|---|---|---|---|")
    batch = (p.get("anogen_generate") or {}).get("batch", "?")
    row = (f"| {data['date']} | {data['device']}; {data['mode']} | "
           f"{rate('ti_train', 'samples_per_s')} ({num(s['ti_train'])}x, {frac('ti_train')}) | "
           f"{rate('anogen_generate', 'samples_per_s')} @{batch} ({num(s['anogen_generate'])}x, {frac('anogen_generate')}) | "
           f"{rate('dual_train', 'pairs_per_s')} ({num(s['dual_train'])}x, {frac('dual_train')}) | "
           f"{rate('dual_generate', 'pairs_per_s')} ({num(s['dual_generate'])}x, {frac('dual_generate')}) | "
           f"{num(max(gib) if gib else None, '{:.1f}')} | {data['checks'].get('finite')} | "
           f"{data['checks'].get('same_bytes_anogen')} / {data['checks'].get('same_bytes_dualanodiff')} |")
    return header + "\n" + row + "\n"


def training_flops(result: dict, flops: int | None, per: str = "steps") -> None:
    if flops and result.get(per):
        result["flops_per_step"] = flops
        result["achieved_flops"] = flops * result[per] / result["seconds"]


def run(plan: Plan, device: torch.device, half: torch.dtype, out: Path | None, argv: list[str]) -> dict:
    from diffusers.models.attention_processor import AttnProcessor2_0

    from anogen_data.diffusion.speed import optimise_for_inference, use_reference_attention
    from _diffusion_bench import cast

    torch.backends.cudnn.benchmark = False  # same kernels for the same shapes: the same-bytes check
    report = Report(out, plan, device, argv)
    finite = Finite()
    say("building full-size components" if plan.full else "building tiny components")
    base = build(plan.full, device, torch.float32, plan.side)  # pristine fp32: every phase copies it
    ours = optimise_for_inference(cast(base, half))
    finite.watch(ours.vae)
    p = report.data["phases"]

    def ti_ours():
        result, flops = ti_phase(cast(base, half), plan, plan.ti_steps, 2, finite, "<ti>", count=True)
        training_flops(result, flops)
        return result

    def ti_ref():
        c = use_reference_attention(copy.deepcopy(base))
        return ti_phase(c, plan, plan.ti_ref_steps, 2, finite, "<ti_ref>", count=False)[0]

    report.phase("ti_train", ti_ours)
    report.phase("ti_train_ref", ti_ref)
    report.phase("anogen_generate", lambda: anogen_generate(ours, plan))

    def anogen_ref():
        c = use_reference_attention(copy.deepcopy(base))
        finite.watch(c.vae)
        secs = extrapolated_seconds(lambda steps: anogen_call(c, 1, steps), plan.ref_steps, plan.gen_steps, device)
        return {"samples_per_s": 1 / secs, "seconds_per_sample": secs, "batch": 1,
                "timed_steps": [1, plan.ref_steps], "extrapolated_to_steps": plan.gen_steps}

    report.phase("anogen_generate_ref", anogen_ref)

    def same_bytes_anogen():
        a, b = anogen_call(ours, 2, 4, seed=7), anogen_call(ours, 2, 4, seed=7)
        report.data["checks"]["same_bytes_anogen"] = bool(torch.equal(a, b))
        return {"samples": 2, "steps": 4}

    report.phase("same_bytes_anogen", same_bytes_anogen)
    dual_state = {}

    def dual_ours():
        c = optimise_for_inference(cast(base, half))
        finite.watch(c.vae)
        result, flops, dual = dual_train(c, plan, plan.dual_steps, 4, True, finite, count=True)
        training_flops(result, flops)
        dual_state["call"] = dual_pipe(c, dual)
        dual_state["c"] = c
        return result

    def dual_ref():
        c = copy.deepcopy(base)
        c.unet.set_attn_processor(AttnProcessor2_0())  # the release trains with diffusers' SDPA LoRA processor
        result, _, dual = dual_train(c, plan, plan.dual_ref_steps, 2, False, finite, count=False)
        dual_state["ref_call"] = dual_pipe(c, dual)
        return result

    report.phase("dual_train", dual_ours)
    report.phase("dual_train_ref", dual_ref)
    if "call" in dual_state:
        report.phase("dual_generate", lambda: dual_generate(dual_state["call"], dual_state["c"], plan))

        def same_bytes_dual():
            a, b = dual_state["call"](1, 4, seed=3), dual_state["call"](1, 4, seed=3)
            same = all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("images", "parts", "masks"))
            report.data["checks"]["same_bytes_dualanodiff"] = bool(same)
            return {"pairs": 1, "steps": 4}

        report.phase("same_bytes_dualanodiff", same_bytes_dual)
    if "ref_call" in dual_state:
        def dual_gen_ref():
            secs = extrapolated_seconds(lambda steps: dual_state["ref_call"](1, steps), plan.ref_steps,
                                        plan.dual_gen_steps, device)
            return {"pairs_per_s": 1 / secs, "seconds_per_pair": secs, "pairs_per_call": 1,
                    "timed_steps": [1, plan.ref_steps], "extrapolated_to_steps": plan.dual_gen_steps}

        report.phase("dual_generate_ref", dual_gen_ref)
    report.data["checks"]["finite"] = finite.ok
    for key in ("same_bytes_anogen", "same_bytes_dualanodiff"):
        report.data["checks"].setdefault(key, False)
    summarise(report.data, spec_peak(device), matmul_peak(device, half) if device.type == "cuda" else None)
    report.data["markdown"] = markdown(report.data)
    report.save()
    if out is not None:
        (out / "gpu_check.md").write_text(report.data["markdown"])
    return report.data


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny components on CPU (seconds; the code path only)")
    parser.add_argument("--out", default=os.environ.get("OUT"), help="folder for gpu_check.json/.md (default: $OUT)")
    parser.add_argument("--dtype", choices=("bf16", "fp32"), default=None,
                        help="our path's frozen-model dtype (default: bf16 on GPU, fp32 in a dry run: CPU bf16 is slow)")
    parser.add_argument("--ti-steps", type=int, default=None)
    parser.add_argument("--dual-steps", type=int, default=None)
    args = parser.parse_args(argv)
    plan = DRY if args.dry_run else FULL
    plan = replace(plan, ti_steps=args.ti_steps or plan.ti_steps, dual_steps=args.dual_steps or plan.dual_steps)
    if args.dry_run:
        device, half = torch.device("cpu"), torch.bfloat16 if args.dtype == "bf16" else torch.float32
    else:
        if not torch.cuda.is_available():
            print("gpu_check: no CUDA device (torch " + torch.__version__ + "); use --dry-run on CPU", file=sys.stderr)
            return 1
        device, half = torch.device("cuda"), torch.float32 if args.dtype == "fp32" else torch.bfloat16
    data = run(plan, device, half, Path(args.out) if args.out else None, argv)
    print(json.dumps({k: data[k] for k in ("speedup_vs_release", "fraction_of_bf16_peak", "peak_gib", "checks", "errors")},
                     indent=2, default=str))
    print(data["markdown"])
    return 0 if data["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
