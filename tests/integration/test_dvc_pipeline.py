"""End to end: the smoke DVC pipeline (``pipelines/smoke``) in a fresh git + DVC repository.

One test, in order, because each step needs the previous one's state: ``dvc repro`` builds everything;
a second ``dvc repro`` runs nothing; ``dvc exp run -S generate.n=...`` reruns generate and everything
downstream but not index/learn/propose; ``dvc metrics show`` lists the dataset stats, quality and benchmark
metrics (numbers only, git-tracked) and, like ``metrics diff`` and ``plots show``, prints no "failed to
load" warning; ``dvc plots show`` renders the pixel/image PR curves. DVC calls the ``anogen-data`` installed
beside this interpreter (put first on PATH).
Slow (a few minutes on 2 CPU cores); ``.ci/run`` runs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "pipelines" / "smoke"
RAN = re.compile(r"Running stage '([^']+)'")

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["DVC_NO_ANALYTICS"] = "1"
    env.update(GIT_AUTHOR_NAME="ci", GIT_AUTHOR_EMAIL="ci@example.com", GIT_COMMITTER_NAME="ci",
               GIT_COMMITTER_EMAIL="ci@example.com")
    return env


def _run(cwd: Path, *args: str, timeout: int = 600) -> str:
    """Run a command in ``cwd``; fail the test with its output when it exits non-zero."""
    proc = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def _dvc(cwd: Path, *args: str) -> str:
    return _run(cwd, sys.executable, "-m", "dvc", *args)


def _ran(output: str) -> set[str]:
    return {name.split("@")[0] for name in RAN.findall(output)}


def _numbers_only(tree) -> bool:
    """True when every leaf of a nested dict is a number (or null for an undefined one)."""
    if isinstance(tree, dict):
        return all(_numbers_only(value) for value in tree.values())
    return tree is None or (isinstance(tree, (int, float)) and not isinstance(tree, bool))


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory) -> Path:
    """A new git repository holding a copy of pipelines/smoke, committed once, with DVC initialised."""
    root = tmp_path_factory.mktemp("smoke")
    for item in SMOKE.iterdir():
        if item.name not in {"runs", "datasets", "models", "metrics", "dvc.lock", ".gitignore", ".dvc", ".dvcignore"}:
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, root / item.name)
    _run(root, "git", "init", "-q")
    _dvc(root, "init", "-q")
    _dvc(root, "config", "core.analytics", "false")
    _run(root, "git", "add", "-A")
    _run(root, "git", "commit", "-q", "-m", "smoke pipeline")
    return root


def test_smoke_pipeline_repro_rerun_experiment_metrics(smoke_repo):
    stages = set(yaml.safe_load((smoke_repo / "dvc.yaml").read_text())["stages"])

    first = _dvc(smoke_repo, "repro")
    assert _ran(first) == stages, first
    version = smoke_repo / "datasets" / "demo" / "v1"
    assert (version / "manifest.json").is_file() and (version / "stats.json").is_file()
    for command in (("metrics", "show"), ("plots", "show")):
        shown = _dvc(smoke_repo, *command)
        assert "failed to load" not in shown.lower() and "warning" not in shown.lower(), shown
    metrics = smoke_repo / "metrics" / "demo"
    for name in ("stats.json", "quality.json", "benchmark/metrics.json"):
        assert _numbers_only(json.loads((metrics / name).read_text())), f"{name} holds more than numbers"
    assert json.loads((metrics / "benchmark" / "info.json").read_text())["model"] == "unet"
    assert "backbone" in json.loads((metrics / "quality.info.json").read_text())

    second = _dvc(smoke_repo, "repro")
    assert _ran(second) == set(), f"a second dvc repro ran stages:\n{second}"

    _run(smoke_repo, "git", "add", "-A")
    _run(smoke_repo, "git", "commit", "-q", "-m", "smoke results")
    n = yaml.safe_load((smoke_repo / "params.yaml").read_text())["generate"]["n"]
    experiment = _dvc(smoke_repo, "exp", "run", "-S", f"generate.n={n - 4}")
    ran = _ran(experiment)
    assert {"generate", "filter", "export", "quality", "train", "benchmark"} <= ran, experiment
    assert not ran & {"index", "learn", "propose"}, f"index/learn/propose reran after changing generate.n:\n{experiment}"
    records = (smoke_repo / "runs" / "demo" / "synth" / "records.jsonl").read_text().splitlines()
    assert len(records) == n - 4

    shown = json.loads(_dvc(smoke_repo, "metrics", "show", "--json"))
    files = {Path(name).as_posix() for rev in shown.values() for name in rev["data"]}
    assert files == {"metrics/demo/stats.json", "metrics/demo/quality.json", "metrics/demo/benchmark/metrics.json"}
    diff = _dvc(smoke_repo, "metrics", "diff")  # HEAD (committed above) vs the experiment in the workspace
    assert "failed to load" not in diff.lower() and "totals.synthetic" in diff, diff

    plots = json.loads(_dvc(smoke_repo, "plots", "show", "--json"))["data"]
    for level in ("pixel", "image"):  # the PR curves render as vega line plots of recall vs precision
        (plot,) = plots[f"metrics/demo/benchmark/pr_{level}.json"]
        values = plot["content"]["data"]["values"]
        assert values[0]["recall"] == 0.0 and values[-1]["recall"] == 1.0 and len(values) <= 200, values[:3]
