"""`anogen-data index` end to end: the demo, real data, params precedence and every bad input."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from anogen_data.data.image_io import write_png
from anogen_data.records import read_index


def _roles(index: Path) -> Counter:
    return Counter((e.defect_type, e.role) for e in read_index(index))


def test_demo_without_data_renders_and_indexes(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("ANOGEN_CACHE", str(tmp_path / "cache"))
    code, out, err = run_cli("index", "--category", "demo", "--out", tmp_path / "idx")
    assert code == 0, err
    roles = _roles(tmp_path / "idx/index.jsonl")
    assert roles[("good", "train")] == 60 and roles[("good", "eval")] == 10
    for defect in ("scratch", "spot", "crack"):
        total = roles[(defect, "learn")] + roles[(defect, "eval")]
        assert total >= 6 and roles[(defect, "learn")] == math.ceil(total / 3)
        assert defect in out
    assert json.loads((tmp_path / "idx/config.json").read_text())["category"] == "demo"
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [".anogen-data", "config.json", "index.jsonl"]


def test_params_then_flags_then_force(run_cli, make_mvtec, tmp_path):
    root = make_mvtec(defects={"spot": 6})
    params = tmp_path / "params.yaml"
    params.write_text(f"index:\n  data: {root}\n  category: widget\n  protocol: random-k\n  shots: 2\n  seed: 1\n")
    out = tmp_path / "idx"
    code, _, err = run_cli("index", "--params", params, "--shots", "4", "--out", out)
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert (config["protocol"], config["shots"], config["seed"], config["data"]) == ("random-k", 4, 1, str(root))
    assert _roles(out / "index.jsonl")[("spot", "learn")] == 4
    before = (out / "index.jsonl").read_bytes()
    code, _, err = run_cli("index", "--params", params, "--out", out)
    assert code == 1 and "already exists" in err and "--force" in err
    assert (out / "index.jsonl").read_bytes() == before
    code, _, err = run_cli("index", "--params", params, "--out", out, "--force")
    assert code == 0 and _roles(out / "index.jsonl")[("spot", "learn")] == 2


def test_same_seed_same_bytes(run_cli, make_mvtec, tmp_path):
    root = make_mvtec(defects={"spot": 9, "crack": 5})
    args = ("index", "--data", root, "--category", "widget", "--protocol", "random-k", "--seed", "3")
    assert run_cli(*args, "--out", tmp_path / "a")[0] == 0
    assert run_cli(*args, "--out", tmp_path / "b")[0] == 0
    assert (tmp_path / "a/index.jsonl").read_bytes() == (tmp_path / "b/index.jsonl").read_bytes()


def _break(kind: str, cat: Path) -> str:
    """Apply one bad input to a good category; return the text the error must contain."""
    if kind == "no-train-good":
        for p in (cat / "train/good").iterdir():
            p.unlink()
        return str(cat / "train/good")
    if kind == "image-without-mask":
        (cat / "ground_truth/spot/001_mask.png").unlink()
        return str(cat / "test/spot/001.png")
    if kind == "mask-without-image":
        (cat / "test/spot/002.png").unlink()
        return str(cat / "ground_truth/spot/002_mask.png")
    if kind == "mask-size":
        write_png(cat / "ground_truth/spot/000_mask.png", np.zeros((5, 5), np.uint8))
        return str(cat / "ground_truth/spot/000_mask.png")
    if kind == "corrupt-image":
        (cat / "train/good/001.png").write_bytes(b"\x89PNG truncated")
        return str(cat / "train/good/001.png")
    if kind == "empty-defect-folder":
        (cat / "test/dent").mkdir()
        return str(cat / "test/dent")
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    ["no-train-good", "image-without-mask", "mask-without-image", "mask-size", "corrupt-image", "empty-defect-folder"],
)
def test_bad_category_exits_1_naming_the_file_and_writes_nothing(run_cli, make_mvtec, tmp_path, kind):
    root = make_mvtec(defects={"spot": 3})
    needle = _break(kind, root / "widget")
    code, out, err = run_cli("index", "--data", root, "--category", "widget", "--out", tmp_path / "idx")
    assert code == 1 and err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "idx").exists() and not list(tmp_path.glob(".idx*"))


@pytest.mark.parametrize(
    "args, needle",
    [
        (("--data", "{tmp}/missing", "--category", "widget"), "{tmp}/missing does not exist"),
        (("--data", "{root}", "--category", "gadget"), "categories found in {root}: widget"),
        (("--data", "{root}", "--category", "../widget"), "--category: must not contain '..'"),
        (("--data", "{root}", "--category", "a/b"), "--category: must be a plain name without '/'"),
        (("--data", "{root}", "--category", "widget", "--protocol", "random-k", "--shots", "4"),
         "--shots 4 is larger than defect type 'spot'"),
        (("--category", "widget"), "pass --data"),
    ],
    ids=["missing-data", "missing-category", "dotdot", "separator", "too-many-shots", "real-category-without-data"],
)
def test_bad_arguments_exit_1_and_write_nothing(run_cli, make_mvtec, tmp_path, args, needle):
    root = make_mvtec(defects={"spot": 3})
    fill = {"tmp": tmp_path, "root": root}
    code, _, err = run_cli("index", *(a.format(**fill) for a in args), "--out", tmp_path / "idx")
    assert code == 1 and needle.format(**fill) in err, err
    assert not (tmp_path / "idx").exists()


README_COUNTS = {  # ../shared/data/README.md: (folder, train/good, test/good, {defect: anomalies})
    "bottle": ("mvtec_bottle", 40, 20, {"broken_large": 20, "broken_small": 22, "contamination": 21}),
    "grid": ("mvtec_grid", 25, 3, {"bent": 3, "broken": 2, "glue": 2, "metal_contamination": 2, "thread": 2}),
    "hazelnut": ("hazelnut_toy", 28, 6, {"colour": 17}),
    "kolektorsdd": ("kolektorsdd", 30, 10, {"crack": 52}),
}
DROPPED_TWINS = {"kolektorsdd": {"crack": 1}}  # test/crack/025.jpg has the bytes of learn shot 000.jpg: not eval


@pytest.mark.parametrize("category", sorted(README_COUNTS))
def test_index_each_shared_dataset(run_cli, shared_data, tmp_path, category):
    folder, good, test_good, defects = README_COUNTS[category]
    code, _, err = run_cli("index", "--data", shared_data / folder, "--category", category, "--out", tmp_path / "idx")
    assert code == 0, err
    roles = _roles(tmp_path / "idx/index.jsonl")
    expected = {("good", "train"): good, ("good", "eval"): test_good}
    for defect, n in defects.items():
        expected[(defect, "learn")] = math.ceil(n / 3)
        expected[(defect, "eval")] = n - math.ceil(n / 3) - DROPPED_TWINS.get(category, {}).get(defect, 0)
    assert dict(roles) == expected
    if category in DROPPED_TWINS:
        assert "dropped eval image" in err and "025.jpg" in err and len(err.strip().splitlines()) == 1


def test_force_refuses_folders_the_tool_did_not_write(run_cli, make_mvtec, tmp_path, monkeypatch):
    root = make_mvtec(defects={"spot": 3})
    important = tmp_path / "important"
    important.mkdir()
    (important / "notes.txt").write_text("keep me")
    args = ("index", "--data", root, "--category", "widget")
    code, _, err = run_cli(*args, "--out", important, "--force")
    assert code == 1 and "not written by anogen-data" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in important.iterdir()) == ["notes.txt"]
    monkeypatch.chdir(important)
    code, _, err = run_cli(*args, "--out", ".", "--force")
    assert code == 1 and "current directory" in err and "Traceback" not in err
    assert sorted(p.name for p in important.iterdir()) == ["notes.txt"]
    monkeypatch.chdir(tmp_path)
    assert run_cli(*args, "--out", tmp_path / "idx")[0] == 0
    marker = json.loads((tmp_path / "idx" / ".anogen-data").read_text())
    assert marker == {"made_by": "anogen-data index"}
    assert run_cli(*args, "--out", tmp_path / "idx", "--force")[0] == 0  # its own folder: replaced
