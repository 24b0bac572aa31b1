"""DualAnoDiff end to end on tiny random components: `concepts learn --method dualanodiff`, then
`generate --backend dualanodiff` writes a dataset version with pixel masks that `verify` and pycocotools
accept, every record naming its BCM reference image."""

from __future__ import annotations

import json

import numpy as np
import pytest

from anogen_data.data.image_io import read_mask
from anogen_data.records import read_records


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one torch thread (tests/conftest.py)


def test_learn_then_generate_writes_a_verified_version_with_pixel_masks(run_cli, demo_index, tmp_path):
    from pycocotools.coco import COCO

    params = tmp_path / "params.yaml"
    params.write_text(
        "learn:\n  dualanodiff_batch_size: 1\n  dualanodiff_rank: 4\n  dualanodiff_lr: 0.001\n"
        "generate:\n  options:\n    dualanodiff:\n      steps: 2\n      resolution: 32\n"
    )
    concepts = tmp_path / "concepts"
    code, _, err = run_cli("concepts", "learn", "--method", "dualanodiff", "--index", demo_index, "--out", concepts,
                           "--model", "tiny", "--device", "cpu", "--steps", "2", "--params", params)
    assert code == 0, err
    for defect in ("scratch", "spot"):
        facts = json.loads((concepts / defect / "concept.json").read_text())
        assert facts["method"] == "dualanodiff" and len(facts["loss_curve"]) == 2
        assert (concepts / defect / "pytorch_lora_weights_whole.safetensors").is_file()

    out = tmp_path / "datasets"
    code, stdout, err = run_cli("generate", "--category", "demo", "--n", "2", "--index", demo_index,
                                "--backend", "dualanodiff", "--concepts", concepts, "--model", "tiny",
                                "--device", "cpu", "--out", out, "--params", params)
    assert code == 0, err
    version = out / "demo" / "v1"
    assert run_cli("verify", version)[0] == 0
    records = read_records(version / "records.jsonl")
    assert len(records) == 2
    for record in records:
        assert record.backend == "dualanodiff" and record.mask_quality == "pixel"
        assert record.recipe["reference"] == record.source_path
        assert record.extra["bcm_reference"] == record.source_path  # backend fact merged into the record
        assert record.extra["shape_source"]
        mask = read_mask(version / record.mask_path)
        assert set(np.unique(mask)) <= {0, 255} and mask.any()
    annotations = [COCO(str(p)).getAnnIds() for p in (version / "coco").glob("instances_*.json")]
    assert sum(len(ids) for ids in annotations) >= len(records)


def test_generate_without_concepts_is_one_clear_error(run_cli, demo_index, tmp_path):
    code, _, err = run_cli("generate", "--category", "demo", "--n", "1", "--index", demo_index,
                           "--backend", "dualanodiff", "--concepts", tmp_path / "none", "--model", "tiny",
                           "--device", "cpu", "--out", tmp_path / "ds")
    assert code == 1
    assert "concepts learn --method dualanodiff" in err
    assert not (tmp_path / "ds" / "demo" / "v1").exists()  # no dataset version was written
