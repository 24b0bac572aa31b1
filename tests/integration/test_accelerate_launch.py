"""Multi-process synthesis under a real ``accelerate launch``: AnoGen (Gui et al., ECCV 2024) and
DualAnoDiff (Jin et al., CVPR 2025).

Two CPU processes (``accelerate launch --cpu --num_processes 2``) each take every 2nd layout and the
main process merges the shards: the merged records and every image and mask must be byte-identical to a
single-process run of the same command (each sample has its own seed; threads pinned to one so the CPU
maths is the same in both runs). Slow (two Python start-ups under accelerate); `.ci/run` runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


pytestmark = pytest.mark.slow

GENERATE = ["generate", "--category", "demo", "--n", "4", "--model", "tiny", "--device", "cpu", "--no-export"]
PARAMS = (  # the smallest settings that still run every part of both methods
    "learn:\n  anogen_steps: 2\n  anogen_batch_size: 2\n  dualanodiff_steps: 2\n  dualanodiff_batch_size: 1\n"
    "  dualanodiff_rank: 4\n"
    "generate:\n  options:\n    anogen:\n      steps: 4\n    dualanodiff:\n      steps: 2\n      resolution: 32\n"
)


@pytest.fixture(scope="module")
def params(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("accelerate") / "params.yaml"
    path.write_text(PARAMS)
    return path


def _learn(method: str, demo_index: Path, params: Path, out: Path) -> Path:
    from anogen_data.cli import main

    try:
        main(["concepts", "learn", "--method", method, "--model", "tiny", "--device", "cpu", "--index",
              str(demo_index), "--out", str(out), "--params", str(params)])
    except SystemExit as exc:
        assert not exc.code, f"concepts learn --method {method} exited {exc.code}"
    return out


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_HOME=str(tmp / "hf"))
    env.pop("ACCELERATE_CONFIG_FILE", None)
    return env


def _run(args: list[str], tmp: Path) -> None:
    done = subprocess.run(args, env=_env(tmp), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


@pytest.mark.parametrize("backend", ["anogen", "dualanodiff"])
def test_two_process_accelerate_launch_equals_one_process(backend, demo_index, params, tmp_path):
    concepts = _learn(backend, demo_index, params, tmp_path / "concepts")
    common = [*GENERATE, "--backend", backend, "--index", str(demo_index), "--concepts", str(concepts),
              "--params", str(params)]
    single, multi = tmp_path / "single", tmp_path / "multi"
    _run([sys.executable, "-m", "anogen_data.cli", *common, "--out", str(single)], tmp_path)
    _run([sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
          "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "anogen_data.cli", *common, "--out", str(multi)],
         tmp_path)
    assert (multi / "records.jsonl").read_bytes() == (single / "records.jsonl").read_bytes()
    assert len((single / "records.jsonl").read_text().splitlines()) == 4
    assert not list(multi.glob(".shard-*")), "the shard folders must be merged away"
    single_files, multi_files = _files(single), _files(multi)
    assert len(single_files) == 8  # 4 images + 4 masks
    assert multi_files.keys() == single_files.keys()
    for name, data in single_files.items():
        assert multi_files[name] == data, name
