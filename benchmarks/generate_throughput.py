"""Generate throughput: images/s per CPU backend with 1 vs 2 worker processes, and peak RSS at n vs 10n.

Measured side by side in one run, on the built-in demo category (256 px) and on MVTec bottle (900 px,
``../shared/data``, skipped when absent). Throughput times the synthesis step alone
(``synthesis.runner.run_synthesis``: read source, recipe, apply, write two PNGs, append a record) on
layouts proposed beforehand, so the ratio shows what ``--workers`` buys; the CPU seconds (this process
plus its workers) show whether workers add work. One more row times the whole ``generate --no-export``
(propose + synthesise, in process) on the demo. Linux's scheduler autogroups give every session the same
CPU share, so while other sessions keep the cores busy 2 workers cannot beat 1: the load average and the
number of other busy processes are recorded with the table. Peak RSS runs the whole
``anogen-data generate --no-export`` in a fresh process at ``--rss-n`` and 10x that many samples
(workers 1): streaming means memory must not grow with n. Prints a table and appends a section to
``benchmarks/RESULTS.md``.

Usage:
    python benchmarks/generate_throughput.py [--n 1000] [--bottle-n 1000] [--e2e-n 300] [--rss-n 100] [--no-append]
    (``--bottle-n 0``, ``--e2e-n 0`` or ``--rss-n 0`` skips that part)
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


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _cpu_ticks() -> dict[int, tuple[int, int]]:
    """{pid: (session id, utime + stime ticks)} of every process (``/proc/<pid>/stat``)."""
    ticks = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks[int(stat.parent.name)] = (int(fields[3]), int(fields[11]) + int(fields[12]))
    return ticks


def busy_others(seconds: float = 2.0) -> int:
    """Processes of other sessions that used > 50% of a core over the next ``seconds``."""
    before = _cpu_ticks()
    time.sleep(seconds)
    mine, hz = os.getsid(0), os.sysconf("SC_CLK_TCK")
    return sum(1 for pid, (sid, t) in _cpu_ticks().items()
               if sid != mine and pid in before and (t - before[pid][1]) / hz > 0.5 * seconds)


def throughput(entries, backend: str, n: int, workers: int) -> tuple[float, float]:
    """(images/s, CPU seconds of this process and its workers) of run_synthesis for ``n`` samples."""
    from anogen_data.config import resolve_generate_config
    from anogen_data.stages.generate import load_layouts, make_context
    from anogen_data.synthesis.runner import run_synthesis

    config = resolve_generate_config(None, {"n": n, "backend": backend}, index={"category": entries[0].category})
    layouts = load_layouts(config, backend, entries, None, None)
    context = make_context(config, backend, entries, None)
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu = time.perf_counter(), _cpu_seconds()
        run_synthesis(backend, context, layouts, Path(tmp) / "out", workers=workers)
        return n / (time.perf_counter() - start), _cpu_seconds() - cpu


def end_to_end(n: int, workers: int) -> tuple[float, float]:
    """(images/s, CPU seconds) of the whole ``generate --category demo --backend perlin --no-export``."""
    from anogen_data.config import resolve_generate_config
    from anogen_data.stages.generate import run_generate

    with tempfile.TemporaryDirectory() as tmp:
        config = resolve_generate_config(None, {"n": n, "backend": "perlin", "workers": workers, "out": f"{tmp}/o"})
        start, cpu = time.perf_counter(), _cpu_seconds()
        run_generate(config, no_export=True)
        return n / (time.perf_counter() - start), _cpu_seconds() - cpu


def _row(name: str, what: str, n: int, one: tuple[float, float], two: tuple[float, float]) -> str:
    return (f"| {name} | {what} | {n} | {one[0]:.1f} | {two[0]:.1f} | {two[0] / one[0]:.2f}x | "
            f"{one[1]:.1f} / {two[1]:.1f} |")


def peak_rss_mib(n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        args = ["generate", "--category", "demo", "--n", str(n), "--backend", "perlin", "--no-export", "--out", f"{tmp}/o"]
        done = subprocess.run([sys.executable, "-c", RSS_SNIPPET, *args], capture_output=True, text=True, check=True)
        return int(done.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="samples per demo measurement")
    parser.add_argument("--bottle-n", type=int, default=1000, help="samples per bottle measurement")
    parser.add_argument("--e2e-n", type=int, default=300, help="samples of the end-to-end demo generate")
    parser.add_argument("--rss-n", type=int, default=100)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    rows, load_before, busy_before = [], os.getloadavg()[0], busy_others()
    cats = [("demo", args.n)] + ([("bottle", args.bottle_n)] if (SHARED / "mvtec_bottle").is_dir() and args.bottle_n else [])
    for name, n in cats:
        entries = category_entries(name)
        for backend in BACKENDS:
            rows.append(_row(name, backend, n, throughput(entries, backend, n, 1), throughput(entries, backend, n, 2)))
            print(rows[-1], flush=True)
    if args.e2e_n:
        rows.append(_row("demo", "perlin, whole generate --no-export", args.e2e_n, end_to_end(args.e2e_n, 1),
                         end_to_end(args.e2e_n, 2)))
        print(rows[-1], flush=True)
    lines = [
        f"\n## generate_throughput ({datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC)\n",
        f"Machine: {machine()} (shared with other jobs). `python benchmarks/generate_throughput.py "
        f"--n {args.n} --bottle-n {args.bottle_n} --e2e-n {args.e2e_n} --rss-n {args.rss_n}`; synthesis step only "
        f"(layouts proposed first) except the whole-generate row. "
        f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; processes of other "
        f"sessions using > 50% of a core (2 s sample): {busy_before} before, {busy_others()} after (each busy session takes an "
        f"equal CPU share, which hides the workers gain).\n",
        "| category | backend | n | images/s, 1 worker | images/s, 2 workers | speed-up (aim >= 1.6x) "
        "| CPU s, 1 / 2 workers |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    if args.rss_n:
        small, big = peak_rss_mib(args.rss_n), peak_rss_mib(10 * args.rss_n)
        lines.append(f"\nPeak RSS of `generate --category demo --backend perlin --no-export`, fresh process, workers 1: "
                     f"n={args.rss_n}: {small:.0f} MiB, n={10 * args.rss_n}: {big:.0f} MiB ({big / small:.2f}x; aim <= 1.2x).\n")
    print("\n".join(lines))
    if not args.no_append:
        append_results("\n".join(lines))


if __name__ == "__main__":
    main()
