"""Contract between the DVC pipelines (``dvc.yaml``, ``pipelines/*/dvc.yaml``) and the ``anogen-data`` CLI.

DVC's own parser resolves every pipeline (``foreach`` fan-out, ``${...}`` interpolation from the
pipeline's params.yaml), then each resolved stage is checked against the Typer app and the stage
configs in ``anogen_data/config.py``:

- the stage runs ``anogen-data <command>``, the command is registered (``learn`` is
  ``concepts learn``) and its name is the stage name;
- every option on the ``cmd`` line is an option of that command, required ones are all given;
- every ``params:`` key (a whole section or ``section.key``) and every ``${section.key}`` used in
  ``cmd`` is a field of the stage's ``<Stage>Config`` dataclass;
- every path on the ``cmd`` line is declared: equal to or inside a ``deps``/``outs`` entry (an
  ``--out`` root may also be the parent of the declared version folder, as ``export`` writes
  ROOT/NAME/vN);
- the root pipeline declares metrics (cache: false), plots and a dataset and a model artifact.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path, PurePosixPath

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PIPELINE_FILES = [REPO / "dvc.yaml", *sorted((REPO / "pipelines").glob("*/dvc.yaml"))]
# stage name -> command words after `anogen-data` (every other stage runs `anogen-data <stage>`)
COMMAND_OF_STAGE = {"learn": ("concepts", "learn")}
INTERP = re.compile(r"\$\{\s*([a-zA-Z_][\w.]*)\s*\}")


def _cli_commands() -> dict[tuple[str, ...], object]:
    """Every leaf command of the Typer app as {("concepts", "learn"): click command}."""
    import typer.main

    from anogen_data.cli import app

    found: dict[tuple[str, ...], object] = {}

    def walk(group, prefix):
        for name, command in getattr(group, "commands", {}).items():
            if getattr(command, "commands", None):
                walk(command, (*prefix, name))
            else:
                found[(*prefix, name)] = command

    walk(typer.main.get_command(app), ())
    return found


def _stages(files=PIPELINE_FILES) -> list[tuple[Path, object]]:
    """Resolved DVC stages of every pipeline file: [(pipeline file, PipelineStage)].

    Each pipeline folder is its own DVC project (the root, and ``pipelines/*`` made with ``dvc init --subdir``).
    """
    from dvc.repo import Repo

    stages = []
    for path in files:
        repo = Repo(str(path.parent), uninitialized=True)
        try:
            stages += [(path, stage) for stage in repo.stage.collect(str(path))]
        finally:
            repo.close()
    return stages


try:
    STAGES, PARSE_ERROR = _stages(), None
except Exception as exc:  # noqa: BLE001 - reported by test_pipelines_parse with DVC's message
    STAGES, PARSE_ERROR = [], exc
COMMANDS = _cli_commands()


def _ids():
    return [f"{p.parent.name or 'root'}:{s.name}" for p, s in STAGES]


def _group(stage) -> str:
    return stage.name.split("@", 1)[0]


def _argv(stage) -> list[str]:
    cmd = stage.cmd if isinstance(stage.cmd, str) else " && ".join(stage.cmd)
    assert "&&" not in cmd and ";" not in cmd and "|" not in cmd, f"{stage}: one anogen-data call per stage"
    argv = shlex.split(cmd)
    assert argv[0] == "anogen-data", f"{stage}: cmd must start with anogen-data, got {argv[0]!r}"
    return argv[1:]


def _config_class(group: str):
    from anogen_data import config

    name = f"{group.capitalize()}Config"
    cls = getattr(config, name, None)
    assert cls is not None, f"anogen_data/config.py has no {name} for stage '{group}'"
    return cls


def _parse(stage, command, argv):
    """Split argv (after the command words) into {option name: value} and positionals, checking names."""
    params = {p.name: p for p in command.params}
    by_flag = {flag: p for p in command.params for flag in (*p.opts, *getattr(p, "secondary_opts", []))}
    options, positionals, i = {}, [], 0
    while i < len(argv):
        token = argv[i]
        if token.startswith("-"):
            assert token in by_flag, f"{stage}: '{token}' is not an option of anogen-data {command.name}"
            param = by_flag[token]
            if param.is_flag:
                options[param.name] = True
                i += 1
                continue
            options[param.name] = argv[i + 1]
            i += 2
        else:
            positionals.append(token)
            i += 1
    arguments = [p for p in params.values() if p.param_type_name == "argument"]
    assert len(positionals) <= len(arguments), f"{stage}: too many positional arguments {positionals}"
    for param, value in zip(arguments, positionals):
        options[param.name] = value
    missing = [p.name for p in params.values() if p.required and p.name not in options]
    assert not missing, f"{stage}: required {missing} missing from cmd"
    return options, params


def _is_path_param(param) -> bool:
    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    return annotation is Path or param.param_type_name == "argument"


def _declared(stage) -> tuple[list[PurePosixPath], list[PurePosixPath]]:
    wdir = Path(stage.wdir)

    def rel(item):  # relative to the pipeline folder; external data roots stay absolute
        path = Path(item.fs_path)
        return PurePosixPath((path.relative_to(wdir) if path.is_relative_to(wdir) else path).as_posix())

    deps = [rel(d) for d in stage.deps if not hasattr(d, "params")]
    return deps, [rel(o) for o in stage.outs]


def test_pipelines_parse():
    assert PARSE_ERROR is None, f"DVC cannot resolve the pipelines: {PARSE_ERROR}"
    assert {p for p, _ in STAGES} == set(PIPELINE_FILES), "a pipeline file has no stages"


def test_pipelines_exist():
    names = {p.parent.name for p in PIPELINE_FILES[1:]}
    assert (REPO / "dvc.yaml").is_file() and {"smoke", "anogen", "dualanodiff"} <= names
    for name in ("smoke", "anogen", "dualanodiff"):
        for file in ("params.yaml", "README.md"):
            assert (REPO / "pipelines" / name / file).is_file(), f"pipelines/{name}/{file} is missing"


def check_command(pipeline, stage):
    """The stage runs its registered command with known options and every required one."""
    group = _group(stage)
    words = COMMAND_OF_STAGE.get(group, (group,))
    argv = _argv(stage)
    assert tuple(argv[: len(words)]) == words, f"{pipeline}: stage {stage.name} must run anogen-data {' '.join(words)}"
    assert words in COMMANDS, f"anogen-data {' '.join(words)} is not a registered command"
    _parse(stage, COMMANDS[words], argv[len(words):])


def check_params(pipeline, stage):
    """Every params key and every ${section.key} in cmd is a field of the stage's config dataclass."""
    group = _group(stage)
    raw = yaml.safe_load(pipeline.read_text(encoding="utf-8"))["stages"][group]
    raw_cmd = (raw.get("do") or raw)["cmd"]
    used = [e for e in INTERP.findall(raw_cmd if isinstance(raw_cmd, str) else " ".join(raw_cmd))
            if e.partition(".")[0] not in ("item", "key")]
    param_deps = [d for d in stage.deps if hasattr(d, "params")]
    if not (param_deps or used):
        return
    fields = {f.name for f in dataclasses.fields(_config_class(group))}
    for dep in param_deps:
        values = yaml.safe_load(Path(dep.fs_path).read_text(encoding="utf-8")) or {}
        for key in dep.params:
            section, _, name = key.partition(".")
            assert section == group, f"{pipeline}: stage {stage.name} lists params of another stage: {key}"
            keys = [name] if name else list((values.get(section) or {}).keys())
            unknown = sorted(set(keys) - fields)
            assert not unknown, f"{dep.fs_path}: {section}.{unknown} are not fields of {group.capitalize()}Config"
    for expr in used:
        section, _, name = expr.partition(".")
        assert section == group and name in fields, f"{pipeline}: ${{{expr}}} in {group}.cmd is not a {group} config field"


def check_paths(pipeline, stage):
    """Every path on the cmd line is a declared dep/out (or inside one; roots of outs/data deps)."""
    group = _group(stage)
    words = COMMAND_OF_STAGE.get(group, (group,))
    assert words in COMMANDS, f"anogen-data {' '.join(words)} is not a registered command"
    options, params = _parse(stage, COMMANDS[words], _argv(stage)[len(words):])
    deps, outs = _declared(stage)
    has_params = any(hasattr(d, "params") for d in stage.deps)
    for name, value in options.items():
        param = params[name]
        if name == "params":
            assert has_params, f"{stage}: --params given but no params: declared"
            continue
        if (name == "data" and value == "demo") or not (_is_path_param(param) or name == "data"):
            continue
        path = PurePosixPath(value)
        covered = any(path == d or d in path.parents for d in deps + outs)
        if name == "out":  # an output root: export writes ROOT/NAME/vN
            covered = covered or any(path in o.parents for o in outs)
        if name == "data":  # a data root: the stage reads ROOT/<category>
            covered = covered or any(path in d.parents for d in deps)
        assert covered, f"{pipeline}: {stage.name} uses {value} ({'--' + name}) but declares it in neither deps nor outs"


@pytest.mark.parametrize(("pipeline", "stage"), STAGES, ids=_ids())
def test_stage_is_a_registered_command(pipeline, stage):
    check_command(pipeline, stage)


@pytest.mark.parametrize(("pipeline", "stage"), STAGES, ids=_ids())
def test_stage_params_are_config_fields(pipeline, stage):
    check_params(pipeline, stage)


@pytest.mark.parametrize(("pipeline", "stage"), STAGES, ids=_ids())
def test_cmd_paths_are_declared(pipeline, stage):
    check_paths(pipeline, stage)


BROKEN = {
    "unknown option": ("anogen-data index --data demo --category demo --out runs/i --colour red", "not an option"),
    "other command": ("anogen-data propose --index runs/i/index.jsonl --out runs/i", "must run anogen-data index"),
    "undeclared path": ("anogen-data index --data demo --category demo --out runs/elsewhere", "neither deps nor outs"),
    "unknown param": ("anogen-data index --data demo --category ${index.colour} --out runs/i", "not a index config field"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_checks_reject_a_broken_pipeline(tmp_path, case):
    cmd, message = BROKEN[case]
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "params.yaml").write_text("index:\n  seed: 0\n  colour: red\n", encoding="utf-8")
    stage = {"cmd": cmd, "params": ["index.seed"], "outs": ["runs/i"]}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"index": stage}}), encoding="utf-8")
    (pipeline, resolved), = _stages([tmp_path / "dvc.yaml"])
    with pytest.raises(AssertionError, match=message):
        for check in (check_command, check_params, check_paths):
            check(pipeline, resolved)


def test_root_pipeline_declares_metrics_plots_artifacts():
    from dvc.repo import Repo

    root_file = REPO / "dvc.yaml"
    root = [s for p, s in STAGES if p == root_file]
    stage_metrics = {Path(o.fs_path).name for s in root for o in s.outs if o.metric and not o.use_cache}
    stage_plots = [o for s in root for o in s.outs if o.plot]
    repo = Repo(str(REPO), uninitialized=True)
    try:
        top_metrics = {Path(m).name for f, ms in repo.index._metrics.items() if Path(f) == root_file for m in ms}
        top_plots = [p for f, ps in repo.index._plots.items() if Path(f) == root_file for p in ps]
        artifacts = repo.artifacts.read().get("dvc.yaml", {})
    finally:
        repo.close()
    assert {"stats.json", "quality.json", "metrics.json"} <= stage_metrics
    assert not top_metrics, "a top-level metric points into a cached output: `dvc metrics diff` would need the cache"
    assert stage_plots or top_plots, "dvc.yaml declares no plots (loss / PR curves)"
    assert {a.type for a in artifacts.values()} >= {"dataset", "model"}, artifacts


def test_metrics_are_git_tracked_and_info_files_are_not_metrics():
    """Every declared metric is cache: false; the stages' info files are declared outs, not metrics."""
    for pipeline, stage in STAGES:
        for out in stage.outs:
            name = Path(out.fs_path).name
            if out.metric:
                assert not out.use_cache, f"{pipeline}: metric {name} of {stage.name} must be cache: false"
                assert "info" not in name, f"{pipeline}: {name} holds strings/configs and must not be a metric"
            if name in ("info.json", "quality.info.json"):
                assert not out.metric and not out.use_cache, f"{pipeline}: {name} of {stage.name}: plain git-tracked out"
    exports = [s for _, s in STAGES if _group(s) == "export"]
    assert exports and all(any(o.metric and Path(o.fs_path).name == "stats.json" for o in s.outs) for s in exports)


def test_pipeline_folders_are_dvc_subprojects_the_root_never_reads():
    """pipelines/* have their own .dvc/, so the root's metrics/plots show never look for their outputs."""
    from dvc.repo import Repo

    for path in PIPELINE_FILES[1:]:
        assert (path.parent / ".dvc" / "config").is_file(), f"{path.parent} is not a DVC subproject (dvc init --subdir)"
    repo = Repo(str(REPO), uninitialized=True)
    try:
        declared = [*repo.index._metrics, *repo.index._plots, *(s.path for s in repo.index.stages)]
    finally:
        repo.close()
    assert declared and not [p for p in declared if "pipelines" in Path(p).parts], declared
