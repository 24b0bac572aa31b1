"""What every benchmark script shares: the machine description and appending a section to RESULTS.md.

Scripts run as ``python benchmarks/<name>.py`` (this folder is then first on ``sys.path``) and do
``from _common import append_results, machine``. Torch's version is read from the package metadata,
so describing the machine never imports torch (``cli_startup.py`` measures start-up time).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().with_name("RESULTS.md")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` where that is unreadable)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def package_version(name: str) -> str:
    """An installed package's version, or "not installed"."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine(*extras: str) -> str:
    """One line naming the machine: CPU model, cores, Python and torch versions, ``extras``, load average.

    ``extras`` are script-specific facts ("GPU NVIDIA H100", "datasets 5.2.0", "1 torch thread").
    """
    facts = [cpu_model(), f"{os.cpu_count()} cores", f"Python {platform.python_version()}",
             f"torch {package_version('torch')}", *extras]
    if hasattr(os, "getloadavg"):
        facts.append("load average " + "/".join(f"{x:.1f}" for x in os.getloadavg()))
    return ", ".join(facts)


def append_results(section_markdown: str) -> None:
    """Append one section (starting with its ``## title`` line) to benchmarks/RESULTS.md, blank-line separated."""
    with open(RESULTS, "a", encoding="utf-8") as fh:
        fh.write("\n" + section_markdown.strip("\n") + "\n")
