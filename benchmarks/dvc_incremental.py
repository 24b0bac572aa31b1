"""What DVC costs and saves on the smoke pipeline, measured side by side in one run.

Reference: the pipeline's eight ``anogen-data`` commands run by hand, one after the other (what a
team does without DVC, and what it must redo after any change). Ours: ``dvc repro`` of the same
pipeline, then a second ``dvc repro`` with nothing changed, then ``dvc repro`` after
``generate.n`` changed (DVC reruns generate and what depends on it, never index/propose).

Prints seconds and ratios to the hand-run reference, and appends a section to
``benchmarks/RESULTS.md`` naming the machine.

Usage:

  python benchmarks/dvc_incremental.py
  python benchmarks/dvc_incremental.py --pipeline pipelines/smoke --no-append
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
COMMAND = re.compile(r"^> (anogen-data .+)$", re.MULTILINE)


def _env() -> dict[str, str]:
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.com",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.com")
    return env


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(cwd: Path, args: list[str] | str, shell: bool = False) -> tuple[tuple[float, float], str]:
    """((wall s, CPU s of the children), stdout+stderr) of one command; raises with its output on failure.

    CPU seconds are the fairer comparison on a shared box: wall time also counts other people's load.
    """
    start, cpu = time.perf_counter(), _cpu()
    proc = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, shell=shell)
    seconds = (time.perf_counter() - start, _cpu() - cpu)
    if proc.returncode:
        raise SystemExit(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return seconds, proc.stdout + proc.stderr


def _copy(pipeline: Path, dest: Path) -> Path:
    # .dvc/ of a pipelines/* subproject is left behind: the copy gets a fresh `dvc init`
    ignore = shutil.ignore_patterns("runs", "datasets", "models", "metrics", "dvc.lock", ".dvc", ".dvcignore")
    shutil.copytree(pipeline, dest, ignore=ignore)
    return dest


def _dvc_repo(pipeline: Path, dest: Path) -> Path:
    root = _copy(pipeline, dest)
    for args in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"], ["git", "add", "-A"],
                 ["git", "commit", "-q", "-m", "pipeline"]):
        _run(root, args)
    return root


def _set_generate_n(root: Path, n: int) -> None:
    params_file = root / "params.yaml"
    params = yaml.safe_load(params_file.read_text(encoding="utf-8"))
    params["generate"]["n"] = n
    params_file.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def measure(pipeline: Path, work: Path) -> dict:
    """(wall, CPU) seconds for: hand-run commands, dvc repro cold / with no change / after generate.n changed."""
    root = _dvc_repo(pipeline, work / "dvc")
    dvc = [sys.executable, "-m", "dvc", "repro"]
    cold, log = _run(root, dvc)
    commands = COMMAND.findall(log)
    noop, _ = _run(root, dvc)
    n = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))["generate"]["n"]
    _set_generate_n(root, n - 4)
    changed, log_changed = _run(root, dvc)
    rerun = len(COMMAND.findall(log_changed))

    by_hand = _copy(pipeline, work / "by_hand")
    wall, cpu = 0.0, 0.0
    for command in commands:
        (w, c), _ = _run(by_hand, command, shell=True)
        wall, cpu = wall + w, cpu + c
    hand = (wall, cpu)
    return {"hand": hand, "cold": cold, "noop": noop, "changed": changed, "stages": len(commands), "rerun": rerun}


def _machine() -> str:
    import torch

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, Python {platform.python_version()}"


def report(r: dict, pipeline: str, machine: str) -> str:
    rows = [
        ("all commands by hand (reference)", r["hand"], f"{r['stages']} stages"),
        ("dvc repro, cold", r["cold"], f"{r['stages']} stages"),
        ("dvc repro, nothing changed", r["noop"], "0 stages"),
        ("dvc repro after generate.n changed", r["changed"], f"{r['rerun']} stages"),
    ]
    lines = [f"## DVC pipeline: incremental rebuilds ({pipeline})", "", f"Machine: {machine}.", "",
             "| run | wall s | CPU s | CPU ratio to by hand | stages run |", "|---|---:|---:|---:|---|"]
    lines += [f"| {name} | {wall:.1f} | {cpu:.1f} | {cpu / r['hand'][1]:.2f}x | {ran} |" for name, (wall, cpu), ran in rows]
    lines += ["", "CPU s = user+sys of the child processes (wall s also counts other load on a shared box). "
              "A no-op `dvc repro` costs about a second; after a `generate.n` change DVC reruns only "
              "generate and what depends on it, never index/propose.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipeline", default="pipelines/smoke", help="pipeline folder (dvc.yaml + params.yaml)")
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dvc-bench-") as tmp:
        results = measure(REPO / args.pipeline, Path(tmp))
    text = report(results, args.pipeline, _machine())
    print(text)
    if not args.no_append:
        with open(REPO / "benchmarks" / "RESULTS.md", "a", encoding="utf-8") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
