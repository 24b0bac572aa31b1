"""`anogen-data train` + `anogen-data benchmark` on the demo category (small, fast), and on real bottle (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


# Tiny convolutions run far faster on one thread on a shared 2-core box (fixture in tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def demo_version(demo_data_root, demo_index, tmp_path_factory):
    """A dataset version of the 64-px demo category: 8 Perlin anomalies (generate + export)."""
    from anogen_data.cli import main

    out = tmp_path_factory.mktemp("versions")
    try:
        main(["generate", "--data", str(demo_data_root), "--category", "demo", "--index", str(demo_index),
              "--n", "8", "--backend", "perlin", "--out", str(out), "--name", "demo"])
    except SystemExit as exc:
        assert exc.code in (0, None), f"generate failed with exit code {exc.code}"
    return out / "demo" / "v1"


TRAIN_FAST = ["--epochs", "1", "--image-size", "64", "--width", "4"]


def _empty_lists(blob, where="") -> list[str]:
    """Paths of the empty lists in a JSON blob."""
    if isinstance(blob, dict):
        return [p for k, v in blob.items() for p in _empty_lists(v, f"{where}.{k}")]
    if isinstance(blob, list):
        return [where] if not blob else [p for i, v in enumerate(blob) for p in _empty_lists(v, f"{where}[{i}]")]
    return []


def test_train_then_benchmark_on_demo(run_cli, demo_version, demo_index, tmp_path):
    code, _, err = run_cli("train", demo_version, "--model", "unet", *TRAIN_FAST, "--out", tmp_path / "model")
    assert code == 0, err
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    manifest = demo_version / "manifest.json"
    from anogen_data.files import sha256_file

    assert meta["dataset"]["manifest_sha256"] == sha256_file(manifest)
    assert meta["dataset"]["n_anomalies"] == 8 and len(meta["curve"]) == 1
    assert not _empty_lists(meta)  # model.json is a DVC plot: DVC's reader crashes on an empty list in it
    code, out, err = run_cli("benchmark", tmp_path / "model", "--index", demo_index, "--out", tmp_path / "bench")
    assert code == 0, err
    metrics = json.loads((tmp_path / "bench" / "metrics.json").read_text())
    info = json.loads((tmp_path / "bench" / "info.json").read_text())
    from anogen_data.records import read_index

    assert metrics["n_eval"] == sum(e.role == "eval" for e in read_index(demo_index))
    assert all(v is None or type(v) in (int, float) for v in metrics.values())  # a DVC metric: numbers only
    assert info["category"] == "demo" and len(info["index_sha256"]) == 64 and "fpr_limit" in info["config"]
    for key in ("image_auroc", "pixel_auroc", "pixel_ap", "pixel_f1_max", "aupro"):
        assert 0.0 <= metrics[key] <= 1.0
    from anogen_data.data.image_io import read_image

    assert read_image(tmp_path / "bench" / "score_maps.png").shape[1] == 3 * 64
    for level in ("pixel", "image"):  # the PR curves dvc plots draws (x: recall, y: precision)
        rows = json.loads((tmp_path / "bench" / f"pr_{level}.json").read_text())
        assert 2 <= len(rows) <= 200 and rows[0] == {"recall": 0.0, "precision": 1.0} and rows[-1]["recall"] == 1.0


def test_same_seed_same_weight_bytes(run_cli, demo_version, tmp_path):
    for name in ("a", "b"):
        code, _, err = run_cli("train", demo_version, "--model", "draem", *TRAIN_FAST, "--seed", "5", "--out", tmp_path / name)
        assert code == 0, err
    a = (tmp_path / "a" / "model.safetensors").read_bytes()
    assert a == (tmp_path / "b" / "model.safetensors").read_bytes()


def test_destseg_with_pretrained_teacher_and_synthesis_baseline(run_cli, demo_index, tmp_path):
    code, _, err = run_cli("train", "--synthesis", "cutpaste", "--index", demo_index, "--model", "destseg",
                           *TRAIN_FAST, "--out", tmp_path / "model")
    assert code == 0, err
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    assert meta["dataset"]["version"] is None and meta["dataset"]["n_anomalies"] == 0
    from safetensors.torch import load_file

    assert not any(k.startswith("teacher.") for k in load_file(str(tmp_path / "model" / "model.safetensors")))
    code, _, err = run_cli("benchmark", tmp_path / "model", "--index", demo_index, "--out", tmp_path / "bench")
    assert code == 0, err


def test_bad_inputs_exit_1_with_one_line(run_cli, demo_index, tmp_path):
    code, _, err = run_cli("benchmark", tmp_path, "--index", demo_index, "--out", tmp_path / "bench")
    assert code == 1 and "anogen-data train" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("train", tmp_path, "--out", tmp_path / "model")
    assert code == 1 and "manifest.json" in err
    assert not (tmp_path / "model").exists()


@pytest.mark.slow
def test_train_benchmark_on_real_bottle(run_cli, shared_data, tmp_path):
    code, _, err = run_cli("index", "--data", shared_data / "mvtec_bottle", "--category", "bottle", "--out", tmp_path / "index")
    assert code == 0, err
    index = tmp_path / "index" / "index.jsonl"
    code, _, err = run_cli("generate", "--data", shared_data / "mvtec_bottle", "--category", "bottle", "--index", index,
                           "--n", "40", "--backend", "paste", "--out", tmp_path / "datasets")
    assert code == 0, err
    version = tmp_path / "datasets" / "bottle" / "v1"
    code, _, err = run_cli("train", version, "--model", "destseg", "--epochs", "3", "--image-size", "128", "--out", tmp_path / "m")
    assert code == 0, err
    code, _, err = run_cli("benchmark", tmp_path / "m", "--index", index, "--out", tmp_path / "b")
    assert code == 0, err
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert metrics["n_eval"] > 40 and metrics["pixel_auroc"] > 0.5
