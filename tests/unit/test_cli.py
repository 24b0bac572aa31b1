"""The Typer CLI: help, version, Usage examples, exit codes, one-line errors, lazy heavy imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer

from anogen_data import __version__
from anogen_data.cli import app

HEAVY = ("torch", "diffusers", "datasets", "transformers", "peft", "accelerate", "torchmetrics", "dvc")


def _commands(group: typer.Typer, prefix: tuple[str, ...] = ()):
    for info in group.registered_commands:
        yield prefix + (info.name or info.callback.__name__.replace("_", "-"),), info.callback
    for sub in group.registered_groups:
        yield from _commands(sub.typer_instance, prefix + (sub.name,))


def test_help_lists_commands_and_version(run_cli):
    code, out, _ = run_cli("--help")
    assert code == 0 and "index" in out and "Usage" in out
    code, out, _ = run_cli("--version")
    assert code == 0 and out.strip() == f"anogen-data {__version__}"


def test_every_command_documents_usage_examples():
    commands = list(_commands(app))
    assert ("index",) in [name for name, _ in commands]
    for name, callback in commands:
        doc = callback.__doc__ or ""
        assert "Usage:" in doc, f"anogen-data {' '.join(name)} has no 'Usage:' examples in its docstring"
        assert f"anogen-data {' '.join(name)}" in doc.split("Usage:", 1)[1], f"{name}: examples must run the command"


def test_usage_error_exits_2(run_cli, tmp_path):
    code, _, err = run_cli("index", "--out", str(tmp_path / "o"), "--no-such-flag")
    assert code == 2 and "no-such-flag" in err
    code, _, err = run_cli("index", "--out", str(tmp_path / "o"), "--protocol", "half")
    assert code == 2 and "half" in err
    assert not (tmp_path / "o").exists()


def test_user_error_is_one_line_and_exits_1(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("ANOGEN_DEBUG", "0")  # restored after the test, even when --debug sets it
    code, out, err = run_cli("index", "--data", str(tmp_path / "missing"), "--category", "bottle", "--out", str(tmp_path / "o"))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and str(tmp_path / "missing") in err
    assert "Traceback" not in err


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(run_cli, tmp_path, monkeypatch, how):
    from anogen_data.errors import AnogenError

    monkeypatch.setenv("ANOGEN_DEBUG", "0")  # restored after the test, even when --debug sets it
    args = ["index", "--data", str(tmp_path / "missing"), "--category", "bottle", "--out", str(tmp_path / "o")]
    if how == "flag":
        args.insert(0, "--debug")
    else:
        monkeypatch.setenv("ANOGEN_DEBUG", "1")
    with pytest.raises(AnogenError, match="does not exist"):
        run_cli(*args)


def test_help_imports_no_heavy_module():
    code = (
        "import sys, json\n"
        "from anogen_data.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
