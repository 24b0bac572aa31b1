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


def _click_commands():
    """(name, click command) for every leaf command of the app."""

    def walk(command, prefix):
        if hasattr(command, "commands"):  # a group
            for name, sub in command.commands.items():
                yield from walk(sub, prefix + (name,))
        else:
            yield prefix, command

    return list(walk(typer.main.get_command(app), ()))


def test_every_command_takes_verbose_and_quiet_and_shows_no_bool_metavar():
    commands = _click_commands()
    assert ("download", "mvtec") in [name for name, _ in commands]
    for name, command in commands:
        opts = {opt for param in command.params for opt in param.opts}
        assert {"-v", "--verbose", "-q", "--quiet"} <= opts, name
        ctx = typer.Context(command, info_name=name[-1])
        for param in command.get_params(ctx):
            if getattr(param, "is_flag", False) or getattr(param, "count", False):
                assert param.metavar == "", (name, param.name)


def test_help_shows_choices_defaults_and_no_bool(run_cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps help at the terminal width
    code, out, _ = run_cli("generate", "--help")
    assert code == 0
    assert "<bool>" not in out
    assert "auto|paste|perlin|cutpaste|paste-aligned|anogen|dualanodiff" in out  # --backend choices
    assert "auto|cpu|cuda|cuda:N" in out and "auto|fp32|fp16|bf16" in out
    assert "[default: (100)]" in out  # GenerateConfig.n, shown though the option defaults to None (params.yaml)
    code, out, _ = run_cli("--help")
    assert code == 0 and "--install-completion" in out and "download" in out


@pytest.mark.parametrize(
    "args, incomplete, expected",
    [
        (["generate", "--backend"], "", ["auto", "paste", "perlin", "cutpaste", "paste-aligned", "anogen", "dualanodiff"]),
        (["generate", "--device"], "c", ["cpu", "cuda"]),
        (["concepts", "learn", "--dtype"], "", ["auto", "fp32", "fp16", "bf16"]),
        (["concepts", "learn", "--method"], "", ["anogen", "dualanodiff"]),
        (["train", "--model"], "d", ["draem", "destseg"]),
        (["index", "--protocol"], "", ["first-third", "random-k"]),
    ],
)
def test_shell_completion_lists_the_choices(run_cli, monkeypatch, args, incomplete, expected):
    # the bash protocol the installed completion script speaks (--install-completion)
    monkeypatch.setenv("_ANOGEN_DATA_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", " ".join(["anogen-data", *args, incomplete]))
    monkeypatch.setenv("COMP_CWORD", str(len(args) + 1))
    code, out, _ = run_cli()
    assert code == 0 and out.split() == expected


def test_choice_enums_match_the_registries_they_mirror():
    from anogen_data.cli.choices import Backend, Method, Recipe
    from anogen_data.detector.recipes import RECIPES
    from anogen_data.diffusion.loading import DTYPE_ALIASES, DTYPES
    from anogen_data.cli.choices import DTYPE_ALIASES as CLI_ALIASES, Dtype
    from anogen_data.stages.learn import LEARNERS
    from anogen_data.synthesis import BACKENDS

    assert [b.value for b in Backend if b != Backend.auto] == list(BACKENDS)
    assert {m.value for m in Method} == set(LEARNERS)
    assert {r.value for r in Recipe} == set(RECIPES)
    assert {d.value for d in Dtype} == {"auto", *DTYPES} and CLI_ALIASES.items() <= DTYPE_ALIASES.items()


def test_device_and_dtype_parsers_accept_one_spelling_plus_aliases():
    from anogen_data.cli.choices import DEVICE_OPTION, DTYPE_OPTION

    device, dtype = DEVICE_OPTION["parser"], DTYPE_OPTION["parser"]
    assert [device(v) for v in ("auto", "cpu", "cuda", "cuda:1")] == ["auto", "cpu", "cuda", "cuda:1"]
    assert [dtype(v) for v in ("bf16", "bfloat16", "float16", "float32", "auto")] == ["bf16", "bf16", "fp16", "fp32", "auto"]
    for parse, bad in ((device, "gpu"), (device, "cuda:x"), (dtype, "int8")):
        with pytest.raises(ValueError, match="is not one of"):
            parse(bad)


def test_cuda_n_passes_the_cli(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps the usage-error panel at the terminal width
    # parsed and accepted: the run then fails on the missing index (exit 1), not on --device (exit 2)
    code, _, err = run_cli("concepts", "learn", "--index", tmp_path / "none.jsonl", "--out", tmp_path / "c",
                           "--device", "cuda:1", "--dtype", "bfloat16")
    assert code == 1 and "none.jsonl" in err
    code, _, err = run_cli("concepts", "learn", "--index", tmp_path / "none.jsonl", "--out", tmp_path / "c", "--device", "tpu")
    assert code == 2 and "'tpu' is not one of auto, cpu, cuda or cuda:N" in err


def test_quiet_prints_no_table_and_errors_still_print(run_cli, demo_data_root, tmp_path):
    code, out, _ = run_cli("index", "--data", demo_data_root, "--category", "demo", "--out", tmp_path / "a")
    assert code == 0 and "scratch" in out and "wrote" in out  # the table and the status line
    code, out, err = run_cli("index", "--data", demo_data_root, "--category", "demo", "--out", tmp_path / "b", "-q")
    assert code == 0 and out == "" and err == "" and (tmp_path / "b" / "index.jsonl").is_file()
    code, out, err = run_cli("index", "--data", demo_data_root, "--category", "demo", "--out", tmp_path / "b", "-q")
    assert code == 1 and out == "" and "already exists" in err  # errors still print under -q
    code, out, _ = run_cli("index", "--data", demo_data_root, "--category", "demo", "--out", tmp_path / "c")
    assert code == 0 and "scratch" in out  # -q of the previous call does not stick
    code, _, err = run_cli("index", "--category", "demo", "--out", tmp_path / "d", "-q", "-v")
    assert code == 2 and "contradict" in err


def test_verbose_turns_on_our_info_logs(run_cli, demo_data_root, tmp_path):
    import logging

    code, _, _ = run_cli("index", "--data", demo_data_root, "--category", "demo", "--out", tmp_path / "a", "-v")
    assert code == 0 and logging.getLogger("anogen_data").level == logging.INFO
    code, _, _ = run_cli("index", "--data", demo_data_root, "--category", "demo", "--out", tmp_path / "b", "-vv")
    assert code == 0 and logging.getLogger("anogen_data").level == logging.DEBUG
    code, _, _ = run_cli("index", "--data", demo_data_root, "--category", "demo", "--out", tmp_path / "c")
    assert code == 0 and logging.getLogger("anogen_data").level == logging.WARNING
