"""CLI start-up time: ``anogen-data --help`` next to ``python -c pass`` and ``python -c "import torch"``.

The three commands are timed in the same run, interleaved (round-robin), each in a fresh process, so
machine load hits them alike. The first round is the cold one (the first launch after the package
changed, byte-code caches aside); the median of the other rounds is the warm figure. The target is
``anogen-data --help`` < 0.5 s: heavy modules (torch, diffusers, datasets) are imported inside commands,
and ``import torch`` shows what an eager import would cost.

Usage:

    python benchmarks/cli_startup.py            # prints the table, appends it to benchmarks/RESULTS.md
    python benchmarks/cli_startup.py --rounds 5 --no-append
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import subprocess
import sys
import time

from _common import append_results, machine


def _commands() -> dict[str, list[str]]:
    cli = shutil.which("anogen-data")
    help_cmd = [cli, "--help"] if cli else [sys.executable, "-c", "from anogen_data.cli import main; main()", "--help"]
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "anogen-data --help": help_cmd,
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    }


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(rounds: int) -> dict[str, list[float]]:
    """Seconds per round for each command, interleaved."""
    commands = _commands()
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, cmd in commands.items():
            times[name].append(_time(cmd))
    return times


def report(times: dict[str, list[float]]) -> str:
    base_cold = times["python -c pass"][0]
    base_warm = statistics.median(times["python -c pass"][1:] or times["python -c pass"])
    lines = [
        f"## CLI start-up ({dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {machine()}. `benchmarks/cli_startup.py`, {len(times['python -c pass'])} "
        "interleaved rounds, one fresh process each.",
        "",
        "| command | cold (s) | warm median (s) | warm / `python -c pass` |",
        "|---|---|---|---|",
    ]
    for name, values in times.items():
        warm = statistics.median(values[1:] or values)
        lines.append(f"| `{name}` | {values[0]:.3f} | {warm:.3f} | {warm / base_warm:.1f}x |")
    help_warm = statistics.median(times["anogen-data --help"][1:] or times["anogen-data --help"])
    verdict = "meets" if help_warm < 0.5 else "MISSES"
    lines += ["", f"`anogen-data --help` {verdict} the 0.5 s target ({help_warm:.3f} s warm; "
              f"cold/baseline-cold {times['anogen-data --help'][0] / base_cold:.1f}x).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    text = report(measure(max(2, args.rounds)))
    print(text)
    if not args.no_append:
        append_results(text)


if __name__ == "__main__":
    main()
