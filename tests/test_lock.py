"""The installed environment is the locked one: every package pinned in requirements.lock is installed at
exactly that version (a registry that moves under us cannot change what the suite runs on)."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

LOCK = Path(__file__).resolve().parents[1] / "requirements.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def read_lock(path: Path) -> dict[str, str]:
    """`name==version` lines of a pip-compile lock, by canonical name."""
    pins = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def test_lock_pins_the_ml_stack() -> None:
    pins = read_lock(LOCK)
    for name in ("torch", "diffusers", "transformers", "peft", "accelerate", "datasets", "dvc", "pydantic"):
        assert name in pins, f"{name} is not pinned in {LOCK.name}"
    assert len(pins) > 100  # transitive dependencies are pinned too


def test_installed_packages_equal_the_lock() -> None:
    pins = read_lock(LOCK)
    wrong = []
    for name, locked in sorted(pins.items()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong.append(f"{name}: locked {locked}, not installed")
            continue
        if Version(installed) != Version(locked):
            wrong.append(f"{name}: locked {locked}, installed {installed}")
    assert not wrong, "environment differs from requirements.lock (pip install -r requirements.lock):\n" + "\n".join(wrong)


def test_read_lock_parses_pins(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    lock.write_text("# comment\nFoo_Bar==1.2.3\n    # via x\ntorch==2.13.0+cpu ; python_version >= '3.11'\n")
    assert read_lock(lock) == {"foo-bar": "1.2.3", "torch": "2.13.0+cpu"}
