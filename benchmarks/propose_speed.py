"""``propose`` wall time before and after evidence-based placement (issue 17), measured side by side.

The baseline is the package at a git ref (default ``0e42023``, the last commit before issue 17's
placement work), exported with ``git archive`` into a temporary folder; the candidate is this checkout.
Each run is a fresh process (``python -c``) that proposes ``--n`` layouts on an index with 200 good
images, timed inside the process from index read to the last layout (imports excluded: torch's import
is paid by both, since the package imports it elsewhere anyway). Runs alternate baseline / candidate
and the minimum of ``--repeats`` is reported (the machine is shared; the minimum is the least disturbed).

Categories: ``demo`` (the washer: colour separates it, the fast path) and ``demo-dark`` (dark ring on
dark cloth: the new feature cue runs on every good image used), 200 good images of 256 px each.

Usage:
    python benchmarks/propose_speed.py                 # ~3 min on 2 busy cores
    python benchmarks/propose_speed.py --repeats 1 --n 100
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import append_results, machine

ROOT = Path(__file__).resolve().parents[1]
RUN = """
import json, sys, time
from anogen_data.records import read_index
from anogen_data.stages.propose import make_layouts
from anogen_data.config import ProposeConfig
import torch  # noqa: F401  (both sides pay it outside the timing)
start = time.perf_counter()
layouts = make_layouts(ProposeConfig(n={n}, seed=0), read_index({index!r}), {category!r})
print(json.dumps({{"seconds": time.perf_counter() - start, "n": len(layouts)}}))
"""


def _index(root: Path, category: str) -> Path:
    from anogen_data.config import IndexConfig
    from anogen_data.data.demo import render_demo
    from anogen_data.stages.index import run_index

    render_demo(root / "data", category=category, size=256, n_good=200, n_test_good=2, n_per_defect=6)
    return run_index(IndexConfig(data=str(root / "data"), category=category), root / f"index-{category}")


def _time(package_root: Path, index: Path, category: str, n: int) -> float:
    code = RUN.format(n=n, index=str(index), category=category)
    env = {"PYTHONPATH": str(package_root), "PATH": "/usr/bin:/bin", "NO_ALBUMENTATIONS_UPDATE": "1",
           "HOME": str(Path.home())}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="0e42023", help="git ref of the baseline package")
    parser.add_argument("--n", type=int, default=200, help="layouts per run")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = tmp / "baseline"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline, "anogen_data"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
        rows = []
        for category in ("demo", "demo-dark"):
            index = _index(tmp / category, category)
            before, after = [], []
            for _ in range(args.repeats):
                before.append(_time(base, index, category, args.n))
                after.append(_time(ROOT, index, category, args.n))
            rows.append((category, min(before), min(after)))
            print(f"{category}: baseline {min(before):.2f} s, now {min(after):.2f} s", flush=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## propose speed before/after evidence-based placement ({stamp})", "",
             f"Machine: {machine('1 torch thread for the features')}.", "",
             f"`python benchmarks/propose_speed.py --n {args.n} --repeats {args.repeats}`: {args.n} layouts on an index "
             f"of 200 good images (256 px), baseline = package at `{args.baseline}`, minimum of {args.repeats} "
             "alternating runs, each a fresh process, imports excluded.", "",
             "| category | baseline (s) | now (s) | ratio | aim |", "|---|---|---|---|---|"]
    for category, before, after in rows:
        ratio = after / before
        lines.append(f"| {category} | {before:.2f} | {after:.2f} | {ratio:.2f}x | <= 2x: {'MET' if ratio <= 2 else 'MISSED'} |")
    append_results("\n".join(lines))


if __name__ == "__main__":
    main()
