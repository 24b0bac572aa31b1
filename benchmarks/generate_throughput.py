"""Generate throughput: images/s per CPU backend with 1 vs 2 worker processes, and peak RSS at n vs 10n.

Measured side by side in one run, on the built-in demo category (256 px) and on MVTec bottle (900 px,
``../shared/data``, skipped when absent). Throughput times the synthesis step alone
(``synthesis.runner.run_synthesis``: read source, recipe, apply, write two PNGs, append a record) on
layouts proposed beforehand, so the ratio shows what ``--workers`` buys. Peak RSS runs the whole
``anogen-data generate --no-export`` in a fresh process at ``--rss-n`` and 10x that many samples
(workers 1): streaming means memory must not grow with n. Prints a table and appends a section to
``benchmarks/RESULTS.md``.

Usage:
    python benchmarks/generate_throughput.py [--n 1000] [--bottle-n 1000] [--rss-n 100] [--no-append]
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import append_results, machine

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ANOGEN_SHARED_DATA", REPO / ".." / "shared" / "data")).resolve()
BACKENDS = ("paste", "perlin", "cutpaste")

RSS_SNIPPET = """
import resource, sys
from anogen_data.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert not exc.code, exc.code
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def category_entries(name: str):
    from anogen_data.config import IndexConfig
    from anogen_data.stages.index import index_entries

    if name == "demo":
        return index_entries(IndexConfig())
    return index_entries(IndexConfig(data=str(SHARED / "mvtec_bottle"), category="bottle"))


def throughput(entries, backend: str, n: int, workers: int) -> float:
    """images/s of run_synthesis for ``n`` samples."""
    from anogen_data.config import GenerateConfig
    from anogen_data.stages.generate import load_layouts, make_context
    from anogen_data.synthesis.runner import run_synthesis

    config = GenerateConfig(n=n, backend=backend, category=entries[0].category)
    layouts = load_layouts(config, backend, entries, None, None)
    context = make_context(config, backend, entries, None)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run_synthesis(backend, context, layouts, Path(tmp) / "out", workers=workers)
        return n / (time.perf_counter() - start)


def peak_rss_mib(n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        args = ["generate", "--category", "demo", "--n", str(n), "--backend", "perlin", "--no-export", "--out", f"{tmp}/o"]
        done = subprocess.run([sys.executable, "-c", RSS_SNIPPET, *args], capture_output=True, text=True, check=True)
        return int(done.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="samples per demo measurement")
    parser.add_argument("--bottle-n", type=int, default=1000, help="samples per bottle measurement")
    parser.add_argument("--rss-n", type=int, default=100)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    rows, load_before = [], os.getloadavg()[0]
    cats = [("demo", args.n)] + ([("bottle", args.bottle_n)] if (SHARED / "mvtec_bottle").is_dir() else [])
    for name, n in cats:
        entries = category_entries(name)
        for backend in BACKENDS:
            one, two = throughput(entries, backend, n, 1), throughput(entries, backend, n, 2)
            rows.append(f"| {name} | {backend} | {n} | {one:.1f} | {two:.1f} | {two / one:.2f}x |")
            print(rows[-1], flush=True)
    small, big = peak_rss_mib(args.rss_n), peak_rss_mib(10 * args.rss_n)
    lines = [
        f"\n## generate_throughput ({datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC)\n",
        f"Machine: {machine()} (shared with other jobs). `python benchmarks/generate_throughput.py "
        f"--n {args.n} --bottle-n {args.bottle_n} --rss-n {args.rss_n}`; synthesis step only (layouts proposed first). "
        f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (a busy box hides the workers gain).\n",
        "| category | backend | n | images/s, 1 worker | images/s, 2 workers | speed-up (aim >= 1.6x) |",
        "|---|---|---|---|---|---|",
        *rows,
        f"\nPeak RSS of `generate --category demo --backend perlin --no-export`, fresh process, workers 1: "
        f"n={args.rss_n}: {small:.0f} MiB, n={10 * args.rss_n}: {big:.0f} MiB ({big / small:.2f}x; aim <= 1.2x).\n",
    ]
    print("\n".join(lines))
    if not args.no_append:
        append_results("\n".join(lines))


if __name__ == "__main__":
    main()
