"""benchmarks/mutation_check.py: the machinery that plants a mutation, names the catching test and tables it
(the full run is a benchmark: `python benchmarks/mutation_check.py`, minutes, not part of the suite)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def check():
    spec = importlib.util.spec_from_file_location("mutation_check", ROOT / "benchmarks" / "mutation_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_plant_applies_the_first_swap_found_exactly_once_and_returns_the_original(check, tmp_path):
    target = tmp_path / "m.py"
    target.write_text("a = 1\nb = a > 0\nc = a > 0\nd = x == y\n")
    twice = check.Mutation("twice", "m.py", (("a > 0", "a >= 0"), ("x == y", "x >= y")), ("t.py",), "")
    assert check.plant(target, twice) == "a = 1\nb = a > 0\nc = a > 0\nd = x == y\n"
    assert target.read_text() == "a = 1\nb = a > 0\nc = a > 0\nd = x >= y\n"  # the ambiguous first swap is skipped
    missing = check.Mutation("gone", "m.py", (("z < 1", "z <= 1"),), ("t.py",), "")
    before = target.read_text()
    assert check.plant(target, missing) is None and target.read_text() == before  # stale: nothing written
    assert check.plant(tmp_path / "absent.py", missing) is None


def test_first_failure_reads_pytest_short_summary(check):
    out = "..F\n=== short test summary info ===\nFAILED tests/a.py::test_x[1] - AssertionError: no\nERROR tests/b.py\n"
    assert check.first_failure(out) == "tests/a.py::test_x[1]"
    assert check.first_failure("2 passed in 0.1s\n") == ""


def test_table_counts_caught_and_lists_every_row(check):
    m = check.Mutation("m1", "f.py", (("a", "b"),), ("t.py",), "breaks it")
    rows = [{"name": "m1", "status": "caught", "by": "t.py::test", "seconds": 2.0, "m": m},
            {"name": "m1", "status": "SURVIVED", "by": "", "seconds": 3.0, "m": m},
            {"name": "m1", "status": "stale", "by": "snippet not found", "seconds": 0.0, "m": m}]
    text = check.table(rows)
    assert text.count("| `m1` |") == 3 and "| caught | `t.py::test` | 2 |" in text
    assert text.endswith("1 of 3 mutations caught.")


def test_every_entry_names_existing_files_and_unique_names(check):
    names = [m.name for m in check.MUTATIONS]
    assert len(names) == len(set(names))
    for m in check.MUTATIONS:
        assert (ROOT / m.file).is_file(), m.name
        assert m.swaps and all(old != new for old, new in m.swaps), m.name
        for test in m.tests:
            assert (ROOT / test.split("::")[0]).is_file(), f"{m.name}: {test}"
