"""Multi-process synthesis under a real ``accelerate launch`` (AnoGen, Gui et al., ECCV 2024).

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

GENERATE = ["generate", "--category", "demo", "--n", "4", "--backend", "anogen", "--model", "tiny",
            "--device", "cpu", "--no-export"]


@pytest.fixture(scope="module")
def concepts(demo_index, tmp_path_factory) -> Path:
    from anogen_data.config import LearnConfig
    from anogen_data.stages.learn import run_learn

    out = tmp_path_factory.mktemp("accelerate") / "concepts"
    return run_learn(LearnConfig(model="tiny", device="cpu", anogen_steps=2, anogen_batch_size=2), demo_index, out)


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_HOME=str(tmp / "hf"))
    env.pop("ACCELERATE_CONFIG_FILE", None)
    return env


def _run(args: list[str], tmp: Path) -> None:
    done = subprocess.run(args, env=_env(tmp), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def test_two_process_accelerate_launch_equals_one_process(demo_index, concepts, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("generate:\n  options:\n    anogen:\n      steps: 4\n")
    common = [*GENERATE, "--index", str(demo_index), "--concepts", str(concepts), "--params", str(params)]
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
