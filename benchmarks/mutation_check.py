"""Mutation check: plant small plausible bugs one at a time in a copy of the tree; do the tests notice?

A test suite's line coverage says which lines ran, not whether a wrong line would be caught. This
script plants each mutation of ``MUTATIONS`` (a named (file, old snippet -> new snippet, tests) entry)
in a temporary COPY of the checkout, runs only the tests named for it, and reports per mutation:

- ``caught``: a named test failed (or the mutated tree failed to import: a collection error);
- ``SURVIVED``: every named test passed with the bug in place; write a test that fails on it;
- ``stale``: the old snippet is no longer in the file (the code moved on): update the entry.

The tests first run once on the unmutated copy; if they fail there, nothing is reported (a mutation
"caught" by an already failing test means nothing). The checkout itself is never written to.

Usage:
    python benchmarks/mutation_check.py                      # all mutations, table on stdout
    python benchmarks/mutation_check.py --results benchmarks/RESULTS.md   # ... and append the table there
    python benchmarks/mutation_check.py --only blend-removed polar-turn-transposed
    python benchmarks/mutation_check.py --list

Exit status: 0 when every mutation is caught, 1 when any survived or is stale, 2 when the baseline fails.
Runs the named test files only (about 5 minutes on 2 busy cores for the whole list).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    """One planted bug: in ``file``, the first (old, new) pair whose ``old`` occurs exactly once is applied."""

    name: str
    file: str
    swaps: tuple[tuple[str, str], ...]
    tests: tuple[str, ...]
    what: str


FILTER_TESTS = ("tests/unit/filters/test_decide.py", "tests/unit/filters/test_filter_stage.py")
BLEND_TESTS = ("tests/unit/diffusion/test_blended.py", "tests/unit/synthesis/test_anogen.py")
MUTATIONS = (
    # --- issue 18, "Caught" when the issue was filed -------------------------------------------------
    Mutation("weak-loss-no-outside", "anogen_data/detector/loss.py",
             (("weak = box * keep_inside + (1 - box)", "weak = box * keep_inside"),),
             ("tests/unit/detector/test_loss.py",), "weak-loss mask drops the outside-box term"),
    Mutation("aupro-no-tie-term", "anogen_data/detector/metrics.py",
             (("between = (n_above - ge) + 0.5 * (ge - gt)", "between = (n_above - ge)"),),
             ("tests/unit/detector/test_metrics.py",), "AUPRO ignores normals tied with an anomalous score"),
    Mutation("coco-region-ge", "anogen_data/writers/coco.py",
             (("labels == label, dtype", "labels >= label, dtype"),),
             ("tests/unit/writers/test_coco.py",), "COCO instance RLE takes every later region too (== -> >=)"),
    Mutation("split-floor-third", "anogen_data/data/split.py",
             (("math.ceil(len(ordered) / 3)", "len(ordered) // 3"),),
             ("tests/unit/data/test_split_protocols.py",), "first-third split learns floor(n/3) shots"),
    Mutation("verify-size-only", "anogen_data/writers/manifest.py",
             (("elif actual[rel] != meta:", "elif actual[rel][\"size\"] != meta.get(\"size\"):"),),
             ("tests/unit/writers/test_manifest.py",), "verify compares file sizes only, not hashes"),
    # --- issue 18, "Not caught" when the issue was filed ---------------------------------------------
    Mutation("blend-removed", "anogen_data/diffusion/blended.py",
             (("latents = m * latents + (1 - m) * background", "latents = latents"),),
             BLEND_TESTS,
             "blended sampler never blends the source latents back"),
    Mutation("blend-unnoised", "anogen_data/diffusion/blended.py",
             (("latents = m * latents + (1 - m) * background", "latents = m * latents + (1 - m) * z0"),),
             BLEND_TESTS,
             "blended sampler blends z0 instead of z0 noised to the step"),
    Mutation("polar-turn-transposed", "anogen_data/layout/shapes.py",
             (("linear = scale * turn\n", "linear = scale * turn.T\n"),),
             ("tests/unit/layout/test_polar.py",), "polar shape turned the opposite way to its placement"),
    Mutation("polar-offset-turn-transposed", "anogen_data/layout/propose.py",
             (("radius * (turn @ offset)", "radius * (turn.T @ offset)"),),
             ("tests/unit/layout/test_polar.py",), "polar placement moves the defect the opposite way to its shape"),
    Mutation("polar-never-mirrors", "anogen_data/layout/shapes.py",
             (("    if mirror:  #", "    if False:  #"),),
             ("tests/unit/layout/test_polar.py",), "polar shapes are never mirrored"),
    Mutation("aupro-connectivity", "anogen_data/detector/metrics.py",
             (("connectivity=4, ltype", "connectivity=8, ltype"), ("connectivity=8, ltype", "connectivity=4, ltype")),
             ("tests/unit/detector/test_metrics.py",), "AUPRO regions labelled with the other connectivity (4 <-> 8)"),
    Mutation("filter-dropped-is-original", "anogen_data/filters/runner.py",
             (("[not r for r in reasons]", "[True for r in reasons]"),),
             FILTER_TESTS,
             "decide: a sample dropped by another filter can be the duplicates' original"),
    Mutation("filter-max-ge", "anogen_data/filters/runner.py",
             (("else (value > limit)", "else (value >= limit)"),),
             FILTER_TESTS,
             "a score exactly at a max_* threshold is dropped (> -> >=)"),
    Mutation("filter-min-le", "anogen_data/filters/runner.py",
             (("(value < limit) if", "(value <= limit) if"),),
             FILTER_TESTS,
             "a score exactly at a min_* threshold is dropped (< -> <=)"),
    Mutation("filter-duplicate-ge", "anogen_data/filters/runner.py",
             (("if sim > config.max_duplicate:", "if sim >= config.max_duplicate:"),),
             FILTER_TESTS,
             "a similarity exactly at max_duplicate is dropped (> -> >=)"),
    Mutation("duplicates-original-lt", "anogen_data/filters/duplicates.py",
             (("if eligible[i] and sim <= threshold:", "if eligible[i] and sim < threshold:"),),
             ("tests/unit/filters/test_decide.py", "tests/unit/filters/test_duplicates_and_crops.py"),
             "a sample exactly at the duplicate threshold is kept but never an original"),
    # --- untested paths and weak tests of issue 18, now tested ----------------------------------------
    Mutation("resume-other-settings", "anogen_data/stages/generate.py",
             (("        if changed:\n", "        if False:\n"),),
             ("tests/integration/test_generate_cli.py::test_resume_with_other_settings_is_refused_and_changes_nothing",),
             "generate --resume accepts a run started with other settings"),
    Mutation("paste-clone-mode-fixed", "anogen_data/synthesis/paste.py",
             (('else clone_mode(layout_mask(layout)[y0:y1, x0:x1])', 'else "normal"'),),
             ("tests/unit/synthesis/test_cpu_backends.py",), "paste always clones 'normal' on free layouts"),
    Mutation("detector-augment-ignored", "anogen_data/detector/data.py",
             (("        if self.augment:\n", "        if False:\n"),),
             ("tests/unit/detector/test_data.py",), "train's augment flag never flips the anomalies"),
    Mutation("fusion-ignored", "anogen_data/synthesis/dual_mask.py",
             (("    if weight <= 0:\n", "    if True:\n"),),
             ("tests/unit/synthesis/test_dualanodiff.py::test_attention_fusion_changes_only_the_mask",),
             "DualAnoDiff attention fusion never changes the mask"),
    Mutation("realism-good-distance-self", "anogen_data/filters/realism.py",
             (('float(1.0 - generated @ source)', 'float(1.0 - source @ source)'),),
             ("tests/unit/filters/test_realism.py",), "good_distance compares the source crop with itself"),
    Mutation("unreadable-output-traceback", "anogen_data/writers/version.py",
             (("    except OSError as exc:\n        raise AnogenError(f\"cannot read {name_dir}",
               "    except ValueError as exc:\n        raise AnogenError(f\"cannot read {name_dir}"),),
             ("tests/unit/writers/test_version.py",), "an output folder the OS refuses escapes as a traceback (as root too)"),
    # --- the rules issue 18 moved to one place -----------------------------------------------------
    Mutation("image-score-counts-padding", "anogen_data/detector/metrics.py",
             (("count_include_pad=False)", "count_include_pad=True)"),),
             ("tests/unit/detector/test_metrics.py",), "image score averages the zero padding into the pooled map"),
    Mutation("pass-rate-reason-name", "anogen_data/filters/rates.py",
             (('return reason.split(":")[0]', 'return reason.split(" ")[0]'),),
             ("tests/unit/writers/test_stats.py", "tests/unit/filters/test_filter_stage.py"),
             "pass rates no longer find the score name in a reason"),
    Mutation("manifest-runs-git-again", "anogen_data/writers/manifest.py",
             (('"git_commit": lineage.get("git_commit"),', '"git_commit": git_commit(),'),),
             ("tests/unit/writers/test_manifest.py",), "the manifest runs git a second time"),
    Mutation("pool-keeps-opencv-threads", "anogen_data/synthesis/runner.py",
             (("    threads = cv2.getNumThreads()\n    cv2.setNumThreads(1)\n", "    threads = cv2.getNumThreads()\n"),),
             ("tests/unit/synthesis/test_runner.py",), "worker_pool forks with OpenCV's thread pool alive"),
    Mutation("pool-awaits-stuck-workers", "anogen_data/synthesis/runner.py",
             (("    except BaseException:\n        stop_workers(pool)\n", "    except BaseException:\n        pool.shutdown(wait=True)\n"),),
             ("tests/unit/synthesis/test_runner.py::test_a_failing_block_terminates_stuck_workers_instead_of_waiting",),
             "a failing block waits for stuck workers (a hang) instead of terminating them"),
)


def tree_files(root: Path) -> list[str]:
    """The checkout's files as git sees them: tracked plus untracked-but-not-ignored (relative paths)."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=root,
                         check=True, capture_output=True).stdout.decode()
    return sorted({p for p in out.split("\0") if p and (root / p).is_file()})


def copy_tree(root: Path, dest: Path) -> None:
    for rel in tree_files(root):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, dest / rel)


def run_tests(copy: Path, tests: tuple[str, ...], timeout: int) -> tuple[int, str, float]:
    """pytest on ``tests`` inside ``copy`` (its own anogen_data first on sys.path): (rc, output, seconds)."""
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:xdist", "-p", "no:cacheprovider", *tests]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
        return proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - start
    except subprocess.TimeoutExpired as exc:
        return 124, str(exc.stdout or ""), time.perf_counter() - start


def first_failure(output: str) -> str:
    """The first ``FAILED``/``ERROR`` test id of pytest's short summary ('' when none)."""
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" ", 1)[1].split(" - ", 1)[0]
    return ""


def plant(path: Path, mutation: Mutation) -> str | None:
    """Write the mutated file; returns the original text, or None when no swap's old snippet occurs once."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    for old, new in mutation.swaps:
        if text.count(old) == 1:
            path.write_text(text.replace(old, new), encoding="utf-8")
            return text
    return None


def check(mutations: list[Mutation], timeout: int) -> list[dict]:
    """Plant each mutation in one temporary copy (restored after each), run its tests, classify."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="anogen-mutation-") as tmp:
        copy = Path(tmp)
        copy_tree(ROOT, copy)
        where = subprocess.run([sys.executable, "-c", "import anogen_data; print(anogen_data.__file__)"], cwd=copy,
                               env={**os.environ, "PYTHONPATH": str(copy)}, capture_output=True, text=True)
        if not where.stdout.strip().startswith(str(copy)):
            sys.exit(f"the copy's anogen_data is not the one imported ({where.stdout.strip() or where.stderr.strip()})")
        union = tuple(dict.fromkeys(t for m in mutations for t in m.tests))
        rc, output, seconds = run_tests(copy, union, timeout)
        print(f"baseline: {len(union)} test files, rc {rc}, {seconds:.0f} s", flush=True)
        if rc != 0:
            print(output[-4000:], file=sys.stderr)
            sys.exit(2)
        for m in mutations:
            target = copy / m.file
            original = plant(target, m)
            if original is None:
                rows.append({"name": m.name, "status": "stale", "by": "snippet not found", "seconds": 0.0, "m": m})
            else:
                try:
                    rc, output, seconds = run_tests(copy, m.tests, timeout)
                finally:
                    target.write_text(original, encoding="utf-8")
                status = {0: "SURVIVED", 1: "caught", 2: "caught", 124: "caught (timeout)"}.get(rc, f"error (rc {rc})")
                by = first_failure(output) or ("collection error" if rc == 2 else "")
                rows.append({"name": m.name, "status": status, "by": by, "seconds": seconds, "m": m})
            print(f"{m.name:<28} {rows[-1]['status']:<10} {rows[-1]['by']}", flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| mutation | file | what it breaks | result | first failing test | s |", "|---|---|---|---|---|---|"]
    for r in rows:
        m = r["m"]
        lines.append(f"| `{m.name}` | `{m.file}` | {m.what} | {r['status']} | `{r['by']}` | {r['seconds']:.0f} |"
                     if r["by"] else f"| `{m.name}` | `{m.file}` | {m.what} | {r['status']} |  | {r['seconds']:.0f} |")
    caught = sum(r["status"].startswith("caught") for r in rows)
    lines.append(f"\n{caught} of {len(rows)} mutations caught.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these mutations only")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--results", type=Path, help="append the table as a section at the end of this file")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per pytest run (default 600)")
    args = parser.parse_args(argv)
    known = {m.name: m for m in MUTATIONS}
    if args.list:
        for m in MUTATIONS:
            print(f"{m.name:<28} {m.file:<36} {m.what}")
        return 0
    unknown = sorted(set(args.only or ()) - set(known))
    if unknown:
        parser.error(f"unknown mutation {', '.join(unknown)}; --list shows the names")
    selected = [known[n] for n in args.only] if args.only else list(MUTATIONS)
    start = time.perf_counter()
    rows = check(selected, args.timeout)
    text = table(rows)
    print("\n" + text)
    if args.results:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        head = (f"\n## Mutation check ({platform.node()}, {os.cpu_count()} CPUs, "
                f"{datetime.now(timezone.utc):%Y-%m-%d}, commit {commit})\n\n"
                f"`python benchmarks/mutation_check.py --results benchmarks/RESULTS.md`: each mutation planted "
                f"alone in a temporary copy, only its named test files run ({time.perf_counter() - start:.0f} s "
                f"in all).\n\n")
        with open(args.results, "a", encoding="utf-8") as fh:
            fh.write(head + text + "\n")
    return 0 if all(r["status"].startswith("caught") for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
