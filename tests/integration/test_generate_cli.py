"""``anogen-data propose`` and ``generate`` end to end on the tiny demo category (and real data, slow)."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pytest

from anogen_data.records import read_layouts, read_records


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _same_tree(a: Path, b: Path, skip=("config.json",)) -> None:
    names = [n for n in _files(a) if n not in skip]
    assert names == [n for n in _files(b) if n not in skip]
    _, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    assert not mismatch and not errors


def test_generate_writes_a_dataset_version(run_cli, demo_data_root, tmp_path):
    code, out, err = run_cli("generate", "--data", demo_data_root, "--category", "demo", "--n", 6, "--out", tmp_path / "ds")
    assert code == 0, err
    version = tmp_path / "ds" / "demo" / "v1"
    assert "wrote" in out and version.is_dir()
    for name in ("manifest.json", "stats.json", "contact_sheet.png", "records.jsonl"):
        assert (version / name).is_file()
    records = read_records(version / "records.jsonl")
    assert len(records) == 6 and {r.backend for r in records} == {"paste"}  # demo has real learn shots
    assert all(r.recipe for r in records)
    assert not (tmp_path / "ds" / "demo" / ".generate.partial").exists()
    code, _, _ = run_cli("generate", "--data", demo_data_root, "--category", "demo", "--n", 2, "--out", tmp_path / "ds",
                         "--backend", "cutpaste")
    assert code == 0 and (tmp_path / "ds" / "demo" / "v2").is_dir()  # versions are never overwritten


def test_propose_then_generate_no_export(run_cli, demo_index, tmp_path):
    code, _, err = run_cli("propose", "--index", demo_index, "--out", tmp_path / "layouts", "--n", 8, "--seed", 4)
    assert code == 0, err
    layouts = read_layouts(tmp_path / "layouts" / "layouts.jsonl")
    assert len(layouts) == 8 and json.loads((tmp_path / "layouts" / "config.json").read_text())["seed"] == 4
    code, _, err = run_cli("generate", "--category", "demo", "--n", 5, "--index", demo_index, "--layouts",
                           tmp_path / "layouts" / "layouts.jsonl", "--no-export", "--out", tmp_path / "synth",
                           "--backend", "perlin")
    assert code == 0, err
    records = read_records(tmp_path / "synth" / "records.jsonl")
    assert [r.id for r in records] == [x.id for x in layouts[:5]]
    assert all((tmp_path / "synth" / r.image_path).is_file() for r in records)
    code, _, err = run_cli("generate", "--category", "demo", "--n", 9, "--index", demo_index, "--layouts",
                           tmp_path / "layouts" / "layouts.jsonl", "--no-export", "--out", tmp_path / "more")
    assert code == 1 and "holds 8 layouts but --n is 9" in err


@pytest.mark.parametrize("placement, prefix", [("free", "real:"), ("polar", "real-polar:"), ("auto", "real-polar:")])
def test_propose_placement_flag_picks_how_real_shapes_are_placed(run_cli, demo_index, tmp_path, placement, prefix):
    code, _, err = run_cli("propose", "--index", demo_index, "--out", tmp_path / "layouts", "--n", 4,
                           "--placement", placement)
    assert code == 0, err
    layouts = read_layouts(tmp_path / "layouts" / "layouts.jsonl")
    assert len(layouts) == 4 and all(x.shape_source.startswith(prefix) for x in layouts), [x.shape_source for x in layouts]
    assert json.loads((tmp_path / "layouts" / "config.json").read_text())["placement"] == placement


def test_workers_do_not_change_the_bytes(run_cli, demo_index, tmp_path):
    for workers in (1, 2):
        code, _, err = run_cli("generate", "--category", "demo", "--n", 8, "--index", demo_index, "--no-export",
                               "--out", tmp_path / f"w{workers}", "--workers", workers, "--backend", "cutpaste")
        assert code == 0, err
    _same_tree(tmp_path / "w1", tmp_path / "w2")


@pytest.mark.parametrize("shape", ["auto", "mixed"])
def test_layouts_proposed_in_workers_equal_the_serial_ones(demo_index, shape):
    from anogen_data.config import ProposeConfig
    from anogen_data.records import read_index
    from anogen_data.stages.generate import propose_in_workers
    from anogen_data.stages.propose import make_layouts

    entries, config = read_index(demo_index), ProposeConfig(n=20, shape=shape, seed=3)
    seen = []
    assert propose_in_workers(config, entries, "demo", 2, seen.append) == make_layouts(config, entries, "demo")
    assert sum(seen) == 20 and len(seen) > 2  # several tasks, progress reported per task


def _crash_in_sample(monkeypatch, call: int):
    """Make the perlin backend raise at its ``call``-th sample (a power cut mid-run); returns the undo."""
    from anogen_data.synthesis.perlin import PerlinBackend

    original, calls = PerlinBackend.apply, {"n": 0}

    def crash(self, *a):
        calls["n"] += 1
        if calls["n"] == call:
            raise RuntimeError("power cut")
        return original(self, *a)

    monkeypatch.setattr(PerlinBackend, "apply", crash)
    return lambda: monkeypatch.setattr(PerlinBackend, "apply", original)


def test_resume_after_a_crash_equals_an_uninterrupted_run(run_cli, demo_index, tmp_path, monkeypatch):
    args = ("generate", "--category", "demo", "--n", 8, "--index", demo_index, "--no-export", "--backend", "perlin")
    undo = _crash_in_sample(monkeypatch, 5)
    with pytest.raises(RuntimeError):
        run_cli(*args, "--out", tmp_path / "run")
    undo()
    assert not (tmp_path / "run").exists() and (tmp_path / "run.partial" / "records.jsonl").is_file()
    code, _, err = run_cli(*args, "--out", tmp_path / "run")
    assert code == 1 and "--resume" in err
    code, _, err = run_cli(*args, "--out", tmp_path / "run", "--resume")
    assert code == 0, err
    code, _, err = run_cli(*args, "--out", tmp_path / "fresh")
    assert code == 0, err
    _same_tree(tmp_path / "fresh", tmp_path / "run")


def test_resume_with_other_settings_is_refused_and_changes_nothing(run_cli, demo_index, tmp_path, monkeypatch):
    args = ("generate", "--category", "demo", "--n", 6, "--index", demo_index, "--no-export", "--backend", "perlin",
            "--out", tmp_path / "run")
    undo = _crash_in_sample(monkeypatch, 3)
    with pytest.raises(RuntimeError):
        run_cli(*args, "--seed", 1)
    undo()
    partial = tmp_path / "run.partial"
    before = {n: (partial / n).read_bytes() for n in _files(partial)}
    for other, changed in ((("--seed", 2), "seed"), (("--seed", 1, "--n", 7), "n"), (("--seed", 1, "--shape", "stroke"), "shape")):
        code, out, err = run_cli(*args, *other, "--resume")
        assert code == 1 and err.strip().splitlines()[-1].endswith(
            f"{partial} was started with different settings ({changed}); resume with the same ones"), err
        assert "Traceback" not in err and not (tmp_path / "run").exists()
        assert {n: (partial / n).read_bytes() for n in _files(partial)} == before  # untouched
    code, _, err = run_cli(*args, "--seed", 1, "--workers", 2, "--resume")  # the worker count never changes bytes
    assert code == 0, err
    assert len(read_records(tmp_path / "run" / "records.jsonl")) == 6


@pytest.mark.parametrize(
    "extra, needle",
    [
        (("--backend", "gan"), "valid backends: paste, perlin, cutpaste"),
        (("--n", "0"), "--n must be at least 1"),
        (("--defect", "dent"), "defect type 'dent'"),
        (("--placement", "spiral"), "unknown placement 'spiral'"),
        (("--placement", "polar", "--foreground", "full"), "placement 'polar' needs an object"),
    ],
)
def test_bad_input_exits_1_and_writes_nothing(run_cli, demo_index, tmp_path, extra, needle):
    args = ["generate", "--category", "demo", "--n", "3", "--index", demo_index, "--no-export", "--out", tmp_path / "o"]
    code, _, err = run_cli(*args, *extra)
    assert code == 1 and needle in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()


def test_existing_output_and_paste_without_anomalies(run_cli, demo_index, make_mvtec, tmp_path):
    (tmp_path / "taken").mkdir()
    code, _, err = run_cli("generate", "--category", "demo", "--n", 2, "--index", demo_index, "--no-export",
                           "--out", tmp_path / "taken")
    assert code == 1 and "already exists" in err
    root = make_mvtec(category="plain", good=3, defects={})
    code, _, err = run_cli("generate", "--data", root, "--category", "plain", "--n", 2, "--backend", "paste",
                           "--out", tmp_path / "ds")
    assert code == 1 and "--backend perlin" in err
    code, _, err = run_cli("generate", "--data", root, "--category", "plain", "--n", 2, "--out", tmp_path / "ds")
    assert code == 0, err  # auto picks perlin for a category without real anomalies
    records = read_records(tmp_path / "ds" / "plain" / "v1" / "records.jsonl")
    assert {r.backend for r in records} == {"perlin"} and {r.defect_type for r in records} == {"synthetic"}


@pytest.mark.slow
@pytest.mark.parametrize("folder, category", [("mvtec_bottle", "bottle"), ("mvtec_grid", "grid"), ("kolektorsdd", "kolektorsdd")])
@pytest.mark.parametrize("backend", ["paste", "perlin", "cutpaste"])
def test_real_data_generate(run_cli, shared_data, tmp_path, folder, category, backend):
    code, _, err = run_cli("generate", "--data", shared_data / folder, "--category", category, "--n", 200,
                           "--backend", backend, "--workers", 2, "--out", tmp_path / "ds")
    assert code == 0, err
    version = tmp_path / "ds" / category / "v1"
    assert len(read_records(version / "records.jsonl")) == 200 and (version / "contact_sheet.png").is_file()
