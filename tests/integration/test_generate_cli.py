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
    placement = json.loads((version / "manifest.json").read_text())["lineage"]["placement"]
    assert placement["kind"] == "object" and placement["agreement"] == 1.0 and placement["placement"] == "object"
    card = (version / "hf" / "README.md").read_text()
    assert "## Where defects were placed" in card and "Category read as: object (cue: colour)" in card
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
    sidecar = json.loads((tmp_path / "layouts" / "placement.json").read_text())  # propose's, carried beside records
    assert json.loads((tmp_path / "synth" / "placement.json").read_text()) == sidecar and sidecar["kind"] == "object"
    assert (tmp_path / "layouts" / "layouts_preview.png").is_file()
    assert all((tmp_path / "synth" / r.image_path).is_file() for r in records)
    code, _, err = run_cli("generate", "--category", "demo", "--n", 9, "--index", demo_index, "--layouts",
                           tmp_path / "layouts" / "layouts.jsonl", "--no-export", "--out", tmp_path / "more")
    assert code == 1 and "holds 8 layouts but --n is 9" in err


@pytest.mark.parametrize("placement, expected", [("free", "free"), ("polar", "polar"), ("auto", "polar")])
def test_propose_placement_flag_picks_how_real_shapes_are_placed(run_cli, demo_index, tmp_path, placement, expected):
    code, _, err = run_cli("propose", "--index", demo_index, "--out", tmp_path / "layouts", "--n", 4,
                           "--placement", placement)
    assert code == 0, err
    layouts = read_layouts(tmp_path / "layouts" / "layouts.jsonl")
    assert len(layouts) == 4 and all(x.shape_source == "real" and x.placement == expected for x in layouts), layouts
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


def test_unknown_backend_is_a_usage_error_listing_the_choices(run_cli, demo_index, tmp_path):
    code, _, err = run_cli("generate", "--category", "demo", "--n", "3", "--index", demo_index, "--no-export",
                           "--out", tmp_path / "o", "--backend", "gan")
    assert code == 2 and "'gan' is not one of" in err and "paste" in err and "dualanodiff" in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()


def test_resume_with_other_settings_is_refused_and_changes_nothing(run_cli, demo_index, tmp_path, monkeypatch):
    args = ("generate", "--category", "demo", "--n", 6, "--index", demo_index, "--no-export", "--backend", "perlin",
            "--out", tmp_path / "run")
    undo = _crash_in_sample(monkeypatch, 3)
    with pytest.raises(RuntimeError):
        run_cli(*args, "--seed", 1)
    undo()
    partial = tmp_path / "run.partial"
    before = {n: (partial / n).read_bytes() for n in _files(partial)}
    for other, changed in ((("--seed", 2), "seed"), (("--seed", 1, "--n", 7), "n"), (("--seed", 1, "--shape", "stroke"), "propose")):
        code, out, err = run_cli(*args, *other, "--resume")
        last = err.strip().splitlines()[-1]
        settings = last.partition("was started with different settings (")[2].partition(")")[0].split(", ")
        assert code == 1 and last.endswith("; resume with the same ones") and changed in settings, err
        assert "Traceback" not in err and not (tmp_path / "run").exists()
        assert {n: (partial / n).read_bytes() for n in _files(partial)} == before  # untouched
    code, _, err = run_cli(*args, "--seed", 1, "--workers", 2, "--resume")  # the worker count never changes bytes
    assert code == 0, err
    assert len(read_records(tmp_path / "run" / "records.jsonl")) == 6


@pytest.mark.parametrize(
    "extra, needle",
    [
        (("--n", "0"), "--n: Input should be greater than or equal to 1"),
        (("--defect", "dent"), "defect type 'dent'"),
        (("--placement", "spiral"), "--placement: Input should be 'auto', 'polar' or 'free'"),
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


def _one_config(tmp_path: Path, data_root: Path) -> Path:
    """A params.yaml whose every section differs from the defaults in a way that changes bytes."""
    params = tmp_path / "params.yaml"
    params.write_text(
        f"index:\n  data: {data_root}\n  protocol: random-k\n  shots: 1\n  seed: 3\n"
        "propose:\n  n: 7\n  placement: free\n  seed: 2\n"
        "generate:\n  n: 5\n  seed: 1\n  workers: 2\n"
        "export:\n  include_learn: false\n  copy_png: false\n  png_compression: 0\n"
    )
    return params


def test_one_shot_generate_equals_the_staged_run_byte_for_byte(run_cli, demo_data_root, tmp_path):
    params = _one_config(tmp_path, demo_data_root)
    p = ("--params", params)
    assert run_cli("generate", "--category", "demo", "--out", tmp_path / "one", *p)[0] == 0
    staged = tmp_path / "runs"
    steps = [
        ("index", "--data", demo_data_root, "--category", "demo", "--out", staged / "index", *p),
        ("propose", "--index", staged / "index/index.jsonl", "--out", staged / "layouts", *p),
        ("generate", "--category", "demo", "--index", staged / "index/index.jsonl", "--layouts",
         staged / "layouts/layouts.jsonl", "--no-export", "--out", staged / "synth", *p),
        ("export", "--index", staged / "index/index.jsonl", "--records", staged / "synth/records.jsonl",
         "--out", tmp_path / "two", "--name", "demo", "--version", "1", *p),
    ]
    for args in steps:
        code, _, err = run_cli(*args)
        assert code == 0, (args[0], err)
    one, two = tmp_path / "one/demo/v1", tmp_path / "two/demo/v1"
    records = read_records(one / "records.jsonl")
    assert len(records) == 5 and len(read_layouts(staged / "layouts/layouts.jsonl")) == 7
    learn = [r for r in read_index_rows(staged / "index/index.jsonl") if r["role"] == "learn"]
    assert len(learn) == 2  # index section used: random-k with 1 shot per defect type (first-third gives 4)
    assert not list(one.glob("mvtec/demo/train/*/real_*"))  # export section used: include_learn false
    _same_tree(one, two, skip=("manifest.json", "hf/README.md"))  # images, masks, records, COCO, parquet, stats
    # (the manifest and the card differ only in lineage: creation time, which files the run read)
    manifest = json.loads((one / "manifest.json").read_text())
    assert manifest["lineage"]["configs"]["export"]["png_compression"] == 0
    assert manifest["lineage"]["configs"]["propose"]["n"] == 7


def read_index_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_category_comes_from_the_index(run_cli, make_mvtec, demo_index, tmp_path):
    root = make_mvtec(category="widget", good=4, defects={"scratch": 3}, size=(48, 48))
    assert run_cli("index", "--data", root, "--category", "widget", "--out", tmp_path / "idx")[0] == 0
    index = tmp_path / "idx" / "index.jsonl"
    code, _, err = run_cli("generate", "--index", index, "--n", 2, "--backend", "cutpaste", "--out", tmp_path / "ds")
    assert code == 0, err
    assert [p.name for p in (tmp_path / "ds").iterdir()] == ["widget"]  # not datasets/demo holding widget images
    code, _, err = run_cli("generate", "--index", index, "--category", "demo", "--n", 2, "--out", tmp_path / "ds2")
    assert code == 1 and "indexes category 'widget'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "ds2").exists()


def test_layouts_without_n_take_the_files_count(run_cli, demo_index, tmp_path):
    code, _, err = run_cli("propose", "--index", demo_index, "--out", tmp_path / "layouts", "--n", 7)
    assert code == 0, err
    layouts = tmp_path / "layouts" / "layouts.jsonl"
    code, out, err = run_cli("generate", "--category", "demo", "--index", demo_index, "--layouts", layouts,
                             "--no-export", "--out", tmp_path / "synth", "--backend", "cutpaste", "-q")
    assert code == 0, err
    assert out == "" and err == ""  # -q: no progress bar, no status line
    assert len(read_records(tmp_path / "synth" / "records.jsonl")) == 7  # not GenerateConfig.n (100)
    params = tmp_path / "params.yaml"
    params.write_text("generate:\n  n: 3\n")
    code, _, err = run_cli("generate", "--category", "demo", "--index", demo_index, "--layouts", layouts,
                           "--no-export", "--out", tmp_path / "synth3", "--backend", "cutpaste", "--params", params)
    assert code == 0, err
    assert len(read_records(tmp_path / "synth3" / "records.jsonl")) == 3  # params.yaml's n still wins (DVC)


def test_generate_as_typed_reads_the_category_under_the_data_root(run_cli, make_mvtec, tmp_path, monkeypatch):
    root = make_mvtec(defects={"scratch": 3}, good=4)  # ROOT/widget
    monkeypatch.setenv("ANOGEN_DATA", str(root))
    monkeypatch.chdir(tmp_path)  # the default --out (datasets) lands here
    code, _, err = run_cli("generate", "--category", "widget", "--n", 2, "-q")
    assert code == 0, err
    assert (tmp_path / "datasets" / "widget" / "v1" / "manifest.json").is_file()
    code, _, err = run_cli("generate", "--category", "screw", "--n", 2)
    assert code == 1 and "anogen-data download mvtec --category screw" in err
    assert not (tmp_path / "datasets" / "screw").exists()  # nothing downloaded, nothing written


def test_propose_says_in_one_line_when_the_learn_shots_overrule_the_estimate(run_cli, make_mvtec, tmp_path, caplog):
    """Random-noise "texture" whose every real defect sits in one corner: one warning line, placed there.

    The line is a WARNING of ``anogen_data.layout.propose`` (stderr when no logging is configured; pytest
    captures it in ``caplog``)."""
    import numpy as np

    from anogen_data.layout.rle import decode_rle

    root = make_mvtec(category="cloth", good=6, defects={"dent": 9}, size=(64, 64))  # masks at [2:8, 3:9]
    assert run_cli("index", "--data", root, "--category", "cloth", "--out", tmp_path / "index")[0] == 0
    code, _, err = run_cli("propose", "--index", tmp_path / "index" / "index.jsonl", "--out", tmp_path / "layouts",
                           "--n", 12)
    assert code == 0, err
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and r.name.startswith("anogen_data")]
    assert len(warnings) == 1 and "look like a texture, but all 3 learn-shot defects" in warnings[0], warnings
    stats = json.loads((tmp_path / "layouts" / "placement.json").read_text())
    assert stats["placement"] == "image-density" and stats["note"] in warnings[0]
    masks = np.stack([decode_rle(x.mask_rle) > 0 for x in read_layouts(tmp_path / "layouts" / "layouts.jsonl")])
    assert masks[:, :24, :24].sum() >= 0.9 * masks.sum()
