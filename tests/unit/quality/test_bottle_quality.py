"""Real-data checks of the quality metrics on MVTec AD bottle (slow; skipped without ../shared/data).

Measured on this box (2026-11-23, n = 30 per backend, seed 0, pooled over defect types):
real anomalies half vs half KID -0.004, anomalies vs good images 0.104;
paste vs perlin: kid_effnetlite0_image 0.037 vs 0.055, kid_effnetlite0_defect 0.316 vs 0.519.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def _embed(paths):
    from anogen_data.data.image_io import read_image
    from anogen_data.filters.embed import Embedder, resize_square

    return Embedder(16)([resize_square(read_image(p), 224) for p in paths], normalize=False)


def test_kid_orders_real_sets(shared_data):
    from anogen_data.quality.kid import kid

    root = shared_data / "mvtec_bottle/bottle"
    anomalies = _embed(sorted(p for d in ("broken_large", "broken_small", "contamination")
                              for p in (root / "test" / d).iterdir()))
    good = _embed(sorted((root / "train/good").iterdir()) + sorted((root / "test/good").iterdir()))
    halves = kid(anomalies[0::2], anomalies[1::2], subsets=50, subset_size=30)["mean"]
    itself = kid(anomalies, anomalies, subsets=50, subset_size=30)["mean"]
    versus_good = kid(anomalies, good, subsets=50, subset_size=30)["mean"]
    assert abs(halves) < 0.02 and abs(itself) < 0.02
    assert versus_good > 5 * max(abs(halves), abs(itself))


def _version(run_cli, shared_data, index, tmp_path, backend):
    synth = tmp_path / f"synth_{backend}"
    code, _, err = run_cli("generate", "--category", "bottle", "--data", shared_data / "mvtec_bottle", "--index", index,
                           "--backend", backend, "--n", "30", "--seed", "0", "--no-export", "--out", synth)
    assert code == 0, err
    code, _, err = run_cli("export", "--index", index, "--records", synth / "records.jsonl", "--out",
                           tmp_path / "datasets", "--name", backend)
    assert code == 0, err
    out = tmp_path / f"quality_{backend}.json"
    code, _, err = run_cli("quality", tmp_path / "datasets" / backend / "v1", "--index", index, "--out", out)
    assert code == 0, err
    return json.loads(out.read_text())["all"]


def test_paste_scores_closer_to_real_than_perlin(shared_data, run_cli, tmp_path):
    index = tmp_path / "index"
    code, _, err = run_cli("index", "--data", shared_data / "mvtec_bottle", "--category", "bottle", "--out", index)
    assert code == 0, err
    paste = _version(run_cli, shared_data, index / "index.jsonl", tmp_path, "paste")
    perlin = _version(run_cli, shared_data, index / "index.jsonl", tmp_path, "perlin")
    assert paste["kid_effnetlite0_defect"]["mean"] < perlin["kid_effnetlite0_defect"]["mean"]
    assert paste["kid_effnetlite0_image"]["mean"] < perlin["kid_effnetlite0_image"]["mean"]
    assert np.isfinite(paste["diversity_effnetlite0_defect"])
