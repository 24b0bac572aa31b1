"""The GPU check (benchmarks/gpu_check.py, issue 16) in its CPU dry-run mode: tiny components, every
phase runs, the JSON and the markdown row are written under $OUT, and the checks pass."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.timeout(600)
def test_dry_run_writes_json_and_markdown_with_every_phase(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    monkeypatch.setenv("OUT", str(tmp_path))
    import gpu_check

    assert gpu_check.main(["--dry-run"]) == 0
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    phases = {"ti_train", "ti_train_ref", "anogen_generate", "anogen_generate_ref", "dual_train", "dual_train_ref",
              "dual_generate", "dual_generate_ref", "same_bytes_anogen", "same_bytes_dualanodiff"}
    assert set(data["phases"]) == phases and data["errors"] == {}
    assert data["checks"] == {"same_bytes_anogen": True, "same_bytes_dualanodiff": True, "finite": True}
    assert data["ok"] is True and "DRY RUN" in data["mode"]
    for name in ("ti_train", "anogen_generate", "dual_train", "dual_generate"):
        assert data["speedup_vs_release"][name] > 0
    assert data["phases"]["anogen_generate"]["samples"] == 2 and data["phases"]["dual_generate"]["pairs"] == 2
    assert data["phases"]["ti_train"]["flops_per_step"] > 0 and data["phases"]["dual_generate"]["flops_per_denoising_step"] > 0
    rows = (tmp_path / "gpu_check.md").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("| date |") and rows[2].count("|") == rows[0].count("|")


def test_shell_script_is_valid_bash_and_keeps_the_machines_torch():
    """`bash benchmarks/gpu_check.sh` is valid bash (syntax only: a real run needs the GPU machine)."""
    result = subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    script = (ROOT / "benchmarks" / "gpu_check.sh").read_text()
    assert "--no-deps -r" in script and "torch|" in script  # the lock minus torch: the CUDA build stays
