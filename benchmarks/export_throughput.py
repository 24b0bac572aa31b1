"""Export throughput of ``anogen_data.writers.write_version``, measured side by side in one run.

For 1,000 images (half real good, half synthetic anomalies with two-blob masks) at 256 and 900 px:

- images/s of the full export (MVTec + COCO + HF parquet + stats + sheet + manifest) with PNG sources
  copied byte for byte (ours, ``copy_png``) vs re-encoded, and vs a plain ``shutil.copy`` of the
  source files (the I/O floor);
- the cost per image of each part, timed alone on a sample: decode, PNG encode, RLE (connected
  instances + pycocotools), parquet (``datasets`` ParquetWriter on ready bytes), sha256 hashing;
- peak RSS of a fresh process exporting 100 vs 1,000 images at 900 px (must stay flat), next to the
  reference way of building the HF split in memory (``Dataset.from_dict(...).to_parquet``).

Appends a section to ``benchmarks/RESULTS.md``.

Usage:
    python benchmarks/export_throughput.py            # full run (~5 min on 2 cores)
    python benchmarks/export_throughput.py --n 200    # quicker
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from anogen_data.config import ExportConfig
from anogen_data.data.image_io import encode_png, read_image, read_mask, write_png
from anogen_data.records import IndexEntry, SynthRecord
from anogen_data.writers.coco import mask_instances
from anogen_data.writers.hf import HfWriter
from anogen_data.writers.manifest import file_table
from anogen_data.writers.version import write_version
from _common import append_results, machine, package_version

REENCODE_N = 200  # the re-encoding export is timed on this many images (rate scaled to n)
POOL = 16  # distinct pictures per size; files are copies, so making 1,000 sources takes seconds


def _picture(size: int, rng: np.random.Generator) -> np.ndarray:
    """A photo-like RGB image: blurred noise background, a bright disc, fine grain."""
    base = cv2.GaussianBlur(rng.normal(128, 40, (size, size, 3)).astype(np.float32), (0, 0), size / 20)
    cv2.circle(base, (size // 2, size // 2), size // 3, (200, 200, 190), -1)
    grain = rng.normal(0, 6, (size, size, 3))
    return np.clip(base + grain, 0, 255).astype(np.uint8)


def _mask(size: int, rng: np.random.Generator) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    for _ in range(2):
        x, y = (int(v) for v in rng.integers(size // 10, size - size // 5, 2))
        cv2.ellipse(mask, (x, y), (size // 20, size // 40), float(rng.integers(0, 180)), 0, 360, 255, -1)
    return mask


def make_sources(root: Path, n: int, size: int):
    """n/2 real good index rows and n/2 synthetic records (PNG files under ``root``)."""
    rng = np.random.default_rng(size)
    pool = [encode_png(_picture(size, rng)) for _ in range(POOL)]
    masks = [encode_png(_mask(size, rng)) for _ in range(POOL)]
    for sub in ("good", "images", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    index, records = [], []
    for i in range(n // 2):
        path = root / "good" / f"{i:06d}.png"
        path.write_bytes(pool[i % POOL])
        index.append(IndexEntry(str(path), "train", "good", "good", None, size, size, "train", "bench"))
    for i in range(n - n // 2):
        (root / "images" / f"{i:06d}.png").write_bytes(pool[(i + 7) % POOL])
        (root / "masks" / f"{i:06d}.png").write_bytes(masks[i % POOL])
        records.append(SynthRecord(f"syn_{i:06d}", "bench", "crack", "perlin", i, index[0].path,
                                   f"images/{i:06d}.png", f"masks/{i:06d}.png", "pixel", (0, 0, 1, 1)))
    return index, records


def export(root: Path, index, records, out: Path, cfg: ExportConfig) -> float:
    start = time.perf_counter()
    write_version(out, "bench", category="bench", index=index, records=records, records_dir=root, config=cfg)
    return time.perf_counter() - start


def components(root: Path, index, records, version: Path, sample: int) -> dict[str, float]:
    """Seconds per image of each part, timed alone on ``sample`` images."""
    paths = [Path(e.path) for e in index[: sample // 2]] + [root / r.image_path for r in records[: sample // 2]]
    mask_paths = [root / r.mask_path for r in records[: sample // 2]]
    t = time.perf_counter()
    images = [read_image(p) for p in paths]
    masks = [read_mask(p) for p in mask_paths]
    decode = (time.perf_counter() - t) / len(paths)
    t = time.perf_counter()
    pngs = [encode_png(im, 3) for im in images]
    png = (time.perf_counter() - t) / len(images)
    t = time.perf_counter()
    instances = [mask_instances(m) for m in masks]
    rle = (time.perf_counter() - t) / len(masks)
    with tempfile.TemporaryDirectory() as tmp:
        writer = HfWriter(Path(tmp))
        t = time.perf_counter()
        for n, data in enumerate(pngs):
            row = {"image": {"bytes": data, "path": "x.png"}, "mask": None, "label": 0, "defect_type": "good",
                   "category": "bench", "bboxes": [list(i.bbox_xywh) for i in instances[n % len(instances)]],
                   "source": "real", "backend": None, "seed": None, "mask_quality": None, "file_name": "x.png"}
            writer.add("train", row, len(data))
        writer.close()
        parquet = (time.perf_counter() - t) / len(pngs)
    t = time.perf_counter()
    table = file_table(version)
    hashing = (time.perf_counter() - t) / len(index + records)
    return {"decode": decode, "png_encode": png, "rle": rle, "parquet": parquet, "hashing": hashing,
            "files_hashed": len(table)}


def child(mode: str, n: int, size: int) -> None:
    """Run in a fresh process: export (ours) or the in-memory reference; print peak RSS in MiB."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        index, records = make_sources(root / "src", n, size)
        if mode == "ours":
            export(root / "src", index, records, root / "out", ExportConfig())
        else:
            from datasets import Dataset

            from anogen_data.writers.hf import hf_features

            rows = {k: [] for k in hf_features()}
            for path in [Path(e.path) for e in index] + [root / "src" / r.image_path for r in records]:
                for key, value in {"image": {"bytes": path.read_bytes(), "path": path.name}, "mask": None,
                                   "label": 0, "defect_type": "good", "category": "bench", "bboxes": [],
                                   "source": "real", "backend": None, "seed": None, "mask_quality": None,
                                   "file_name": path.name}.items():
                    rows[key].append(value)
            Dataset.from_dict(rows, features=hf_features()).to_parquet(str(root / "ref.parquet"))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def peak_rss(mode: str, n: int, size: int) -> float:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(n), str(size)], capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def run_size(n: int, size: int, sample: int) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        index, records = make_sources(root / "src", n, size)
        export(root / "src", index[:2], records[:2], root / "warm", ExportConfig())  # imports, page cache
        ours = export(root / "src", index, records, root / "out", ExportConfig())
        k = min(n, REENCODE_N) // 2
        reencode = export(root / "src", index[:k], records[:k], root / "out", ExportConfig(copy_png=False)) * n / (2 * k)
        start = time.perf_counter()
        (root / "copy").mkdir()
        for p in (root / "src").rglob("*.png"):
            shutil.copy(p, root / "copy" / f"{p.parent.name}_{p.name}")
        floor = time.perf_counter() - start
        parts = components(root / "src", index, records, root / "out" / "bench" / "v1", sample)
    total = sum(v for k, v in parts.items() if k != "files_hashed")
    lines = [
        f"| {size} px | {n / ours:.1f} | {n / reencode:.1f} | {reencode / ours:.2f}x | {n / floor:.0f} | "
        f"{ours / floor:.1f}x |",
    ]
    split = ", ".join(f"{k.replace('_', ' ')} {1000 * v:.1f} ms ({100 * v / total:.0f}%)"
                      for k, v in parts.items() if k != "files_hashed")
    return lines + [f"  - {size} px, per image, each part alone on {sample} images: {split}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="images per export")
    parser.add_argument("--sample", type=int, default=100, help="images for the per-part timings")
    parser.add_argument("--dry-run", action="store_true", help="print only; do not append to RESULTS.md")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]))
        return
    rows, notes = [], []
    for size in (256, 900):
        row, note = run_size(args.n, size, args.sample)
        rows.append(row)
        notes.append(note)
        print(row, note, sep="\n", flush=True)
    small, large = max(10, args.n // 10), args.n
    rss = {(mode, n): peak_rss(mode, n, 900) for mode in ("ours", "reference") for n in (small, large)}
    print(json.dumps({f"{m}@{n}": round(v) for (m, n), v in rss.items()}))
    section = [
        f"\n## export_throughput ({dt.date.today().isoformat()})\n",
        f"Machine: {machine('datasets ' + package_version('datasets'), 'opencv ' + cv2.__version__)}. `python benchmarks/export_throughput.py --n {args.n}`; half real good images,",
        "half synthetic anomalies (two-blob masks); full export = MVTec tree + COCO RLE + HF parquet + stats +",
        "contact sheet + card + manifest, 2 worker threads.\n",
        f"(re-encoded export timed on {min(args.n, REENCODE_N)} images.)\n",
        "| size | images/s (ours: PNG copied) | images/s (re-encoded) | copy vs re-encode | images/s (`shutil.copy` floor) | ours / floor |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        *notes,
        f"\nPeak RSS of a fresh process at 900 px, {small} vs {large} images: ours {rss[('ours', small)]:.0f} -> "
        f"{rss[('ours', large)]:.0f} MiB ({rss[('ours', large)] / rss[('ours', small)]:.2f}x, streaming); reference "
        f"in-memory `Dataset.from_dict(...).to_parquet` of the HF split alone {rss[('reference', small)]:.0f} -> "
        f"{rss[('reference', large)]:.0f} MiB ({rss[('reference', large)] / rss[('reference', small)]:.2f}x).",
    ]
    text = "\n".join(section) + "\n"
    print(text)
    if args.dry_run:
        return
    append_results(text)


if __name__ == "__main__":
    main()
