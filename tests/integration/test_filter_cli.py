"""`anogen-data filter` and `anogen-data quality` through the CLI on the demo category (CPU backends)."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def demo_synth(demo_index, tmp_path_factory):
    """20 perlin samples on the session's 64 px demo category (generate --no-export)."""
    from anogen_data.cli import main

    out = tmp_path_factory.mktemp("filter_cli") / "synth"
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--category", "demo", "--index", str(demo_index), "--backend", "perlin", "--n", "20",
              "--seed", "0", "--no-export", "--out", str(out)])
    assert exit_info.value.code in (0, None)
    return out / "records.jsonl"


@pytest.mark.slow
def test_filter_then_export_keeps_only_kept_samples(run_cli, demo_synth, demo_index, tmp_path):
    code, out, err = run_cli("filter", "--records", demo_synth, "--index", demo_index, "--out", tmp_path / "filter")
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "filter/scores.jsonl").read_text().splitlines()]
    assert len(rows) == 20 and all(set(r) == {"id", "keep", "reasons", "scores"} for r in rows)
    assert all(r["keep"] == (r["reasons"] == []) for r in rows)
    kept = sum(r["keep"] for r in rows)
    assert kept > 0
    code, _, err = run_cli("export", "--index", demo_index, "--records", demo_synth, "--scores",
                           tmp_path / "filter/scores.jsonl", "--out", tmp_path / "datasets", "--name", "demo")
    assert code == 0, err
    version = tmp_path / "datasets/demo/v1"
    assert len((version / "records.jsonl").read_text().splitlines()) == kept
    stats = json.loads((version / "stats.json").read_text())
    assert stats["filters"]["kept"] == kept
    code, out, err = run_cli("quality", version, "--index", demo_index, "--out", tmp_path / "quality.json")
    assert code == 0, err
    report = json.loads((tmp_path / "quality.json").read_text())
    assert sum(r["n_generated"] for r in report["per_defect"].values()) == kept


def test_filter_refuses_an_existing_output_and_bad_params(run_cli, demo_index, tmp_path):
    demo_synth = tmp_path / "records.jsonl"
    demo_synth.write_text("")
    (tmp_path / "filter").mkdir()
    code, _, err = run_cli("filter", "--records", demo_synth, "--index", demo_index, "--out", tmp_path / "filter")
    assert code == 1 and "already exists" in err
    params = tmp_path / "params.yaml"
    params.write_text("filter:\n  max_leak: 0.1\n")
    code, _, err = run_cli("filter", "--records", demo_synth, "--index", demo_index, "--out", tmp_path / "f2",
                           "--params", params)
    assert code == 1 and "filter.max_leak" in err
    code, _, err = run_cli("filter", "--records", demo_synth, "--index", demo_index, "--out", tmp_path / "f3")
    assert code == 1 and "holds no records" in err and not (tmp_path / "f3").exists()
