"""Throughput of the full filter stack (``anogen-data filter``) on CPU at 256 and 900 px.

Prints samples/s of the whole stack, the share of time spent in the EfficientNet-Lite0 backbone, and,
side by side in the same run, the backbone as we run it (channels-last, batch norms folded,
``filter.batch_size`` crops per pass) vs. the plain way (NCHW, unfolded) and vs. one crop per pass.
Appends a section to benchmarks/RESULTS.md.

Data: MVTec AD bottle from ../shared/data when present (good images as sources, real learn shots as
realism references), else the built-in demo category. Synthetic samples are made here (a darkened
noisy ellipse, mask = the ellipse) so that only the filters are timed.

Usage:
    python benchmarks/filter_throughput.py --n 48
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import torch

from anogen_data.config import FilterConfig
from anogen_data.data.image_io import read_image, write_png
from anogen_data.files import write_jsonl
from anogen_data.filters.embed import Embedder
from anogen_data.records import IndexEntry, SynthRecord, read_index, to_row, write_index
from anogen_data.stages.filter import score_records
from _common import append_results, machine

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mvtec_bottle"


def real_index(tmp: Path) -> list[IndexEntry]:
    """The bottle index (or the demo one) with roles: train goods and learn shots."""
    from anogen_data.config import IndexConfig
    from anogen_data.stages.index import run_index

    config = IndexConfig(data=str(SHARED), category="bottle") if SHARED.is_dir() else IndexConfig()
    return read_index(run_index(config, tmp / "index"))


def make_records(entries: list[IndexEntry], size: int, n: int, out: Path) -> list[SynthRecord]:
    """n synthetic samples at size x size on resized good images (per-sample seeded)."""
    goods = [e for e in entries if e.role == "train"]
    (out / "images").mkdir(parents=True)
    (out / "masks").mkdir()
    (out / "sources").mkdir()
    records = []
    for i in range(n):
        rng = np.random.default_rng([0, i])
        source_path = out / "sources" / f"{i % len(goods):03d}.png"
        if not source_path.exists():
            write_png(source_path, cv2.resize(read_image(goods[i % len(goods)].path), (size, size), interpolation=cv2.INTER_AREA))
        source = read_image(source_path)
        mask = np.zeros((size, size), np.uint8)
        centre = tuple(int(c) for c in rng.integers(size // 3, 2 * size // 3, 2))
        axes = tuple(int(a) for a in rng.integers(size // 40 + 2, size // 12 + 3, 2))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
        image = source.copy()
        noise = rng.integers(0, 40, image.shape)
        image[mask > 0] = (image[mask > 0] * 0.4 + noise[mask > 0]).astype(np.uint8)
        write_png(out / "images" / f"s{i:04d}.png", image)
        write_png(out / "masks" / f"s{i:04d}.png", mask)
        x0, y0 = centre[0] - axes[0], centre[1] - axes[1]
        records.append(SynthRecord(f"s{i:04d}", "bench", entries[-1].defect_type, "bench", i, str(source_path),
                                   f"images/s{i:04d}.png", f"masks/s{i:04d}.png", "pixel",
                                   (max(x0, 0), max(y0, 0), x0 + 2 * axes[0] + 1, y0 + 2 * axes[1] + 1)))
    write_jsonl(out / "records.jsonl", (to_row(r) for r in records))
    return records


def timed_stack(records, out, entries, config) -> tuple[float, float]:
    """(wall seconds of score_records, seconds inside the backbone)."""
    spent = [0.0]
    original = Embedder.__call__

    def counting(self, crops, normalize=True):
        start = time.perf_counter()
        try:
            return original(self, crops, normalize)
        finally:
            spent[0] += time.perf_counter() - start

    Embedder.__call__ = counting
    try:
        start = time.perf_counter()
        score_records(records, out, entries, config, progress=False)
        return time.perf_counter() - start, spent[0]
    finally:
        Embedder.__call__ = original


def backbone_variants(config: FilterConfig, n: int, rounds: int = 3) -> dict[str, float]:
    """Crops/s of the backbone, median of interleaved rounds: ours (channels-last, batch norms folded,
    ``batch_size`` crops per pass) vs. the plain way (NCHW, unfused) batched, and ours one crop per pass."""
    from anogen_data.features.efficientnet_lite import load_efficientnet_lite0

    crops = torch.from_numpy(np.stack([np.random.default_rng(i).integers(0, 256, (config.crop_size, config.crop_size, 3),
                                                                          np.uint8) for i in range(n)]))
    crops = crops.permute(0, 3, 1, 2).float() / 255
    ours = load_efficientnet_lite0(fuse=True)
    plain = load_efficientnet_lite0().to(memory_format=torch.contiguous_format)
    plain.channels_last = False
    variants = {
        f"ours: channels-last + folded BN, {config.batch_size}/pass": (ours, config.batch_size),
        f"plain NCHW, unfolded BN, {config.batch_size}/pass": (plain, config.batch_size),
        "ours, 1/pass": (ours, 1),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    with torch.inference_mode():
        for model, batch in variants.values():
            model.embed(crops[:batch])  # warm-up
        for _ in range(rounds):
            for name, (model, batch) in variants.items():
                start = time.perf_counter()
                for i in range(0, n, batch):
                    model.embed(crops[i:i + batch])
                times[name].append(time.perf_counter() - start)
    return {name: n / float(np.median(t)) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=48)
    args = parser.parse_args()
    config = FilterConfig()
    lines = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        entries = real_index(tmp)
        for size in (256, 900):
            out = tmp / f"s{size}"
            records = make_records(entries, size, args.n, out)
            score_records(records[:2], out, entries, config, progress=False)  # warm-up: model, caches
            wall, backbone = timed_stack(records, out, entries, config)
            lines.append(f"| {size} px | {args.n} | {args.n / wall:.2f} | {backbone / wall:.0%} |")
            print(lines[-1], flush=True)
        speeds = backbone_variants(config, 2 * args.n)
    first = next(iter(speeds.values()))
    section = [
        f"\n## filter_throughput ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)\n",
        f"Machine: {machine(f'{torch.get_num_threads()} torch threads')} at the end (shared box: absolute numbers "
        "are pessimistic). "
        f"`python benchmarks/filter_throughput.py --n {args.n}`; data: {'MVTec bottle' if SHARED.is_dir() else 'demo'}; "
        "full stack = read image/source/mask, mask sanity, foreground, change/leakage, realism "
        f"(2 crops of {config.crop_size} px per sample), duplicate scan.\n",
        "| size | samples | samples/s (full stack) | share of time in backbone |",
        "|---|---|---|---|",
        *lines,
        f"\nBackbone alone on {2 * args.n} crops of {config.crop_size} px, same run, median of 3 interleaved rounds:\n",
        "| backbone variant | crops/s | vs ours |",
        "|---|---|---|",
        *[f"| {name} | {speed:.1f} | {speed / first:.2f}x |" for name, speed in speeds.items()],
        "",
    ]
    text = "\n".join(section)
    print(text)
    append_results(text)


if __name__ == "__main__":
    main()
