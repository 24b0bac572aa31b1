"""AnoGen end to end through the CLI with tiny random components: learn -> generate -> export -> verify."""

from __future__ import annotations

import json

import pytest
import torch


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one torch thread (tests/conftest.py)


@pytest.fixture(scope="module")
def concepts(demo_index, tmp_path_factory):
    """Concepts learned on the 64 px demo index (2 steps: the files, not the quality, are under test)."""
    from anogen_data.config import LearnConfig
    from anogen_data.stages.learn import run_learn

    out = tmp_path_factory.mktemp("anogen") / "concepts"
    return run_learn(LearnConfig(model="tiny", device="cpu", anogen_steps=2, anogen_batch_size=2), demo_index, out)


def test_learn_writes_one_diffusers_embedding_per_defect_type(concepts):
    from safetensors.torch import load_file

    for defect in ("scratch", "spot"):
        meta = json.loads((concepts / defect / "concept.json").read_text())
        assert meta["token"] == f"<{defect}>" and meta["init_word"] == "defect" and meta["base_model"] == "tiny"
        assert len(meta["loss_curve"]) == 2 and meta["lr"] == pytest.approx(5e-3 * 2)
        assert len(meta["learn_shots"]) == 2 and all(len(s["sha256"]) == 64 for s in meta["learn_shots"])
        tensors = load_file(concepts / defect / "learned_embeds.safetensors")
        assert list(tensors) == [f"<{defect}>"] and tensors[f"<{defect}>"].shape == (1, 32)
    assert json.loads((concepts / "config.json").read_text())["method"] == "anogen"


def test_generate_anogen_version_carries_box_annotations(run_cli, demo_index, concepts, tmp_path):
    from pycocotools.coco import COCO

    params = tmp_path / "params.yaml"
    params.write_text("generate:\n  options:\n    anogen:\n      steps: 4\n")
    code, out, err = run_cli(
        "generate", "--category", "demo", "--n", "3", "--backend", "anogen", "--index", demo_index,
        "--concepts", concepts, "--model", "tiny", "--device", "cpu", "--batch-size", "2",
        "--out", tmp_path / "datasets", "--params", params,
    )
    assert code == 0, err
    version = tmp_path / "datasets" / "demo" / "v1"
    records = [json.loads(line) for line in (version / "records.jsonl").read_text().splitlines()]
    assert len(records) == 3 and {r["mask_quality"] for r in records} == {"box"}
    assert all(r["recipe"]["steps"] == 4 and r["recipe"]["prompt"] == f"<{r['defect_type']}>" for r in records)
    coco = COCO(str(version / "coco" / "instances_train.json"))
    boxed = [a for a in coco.anns.values() if a.get("mask_quality") == "box"]
    assert len(boxed) == 3
    code, out, err = run_cli("verify", version)
    assert code == 0, err


def test_cuda_without_cuda_and_missing_model_folder_exit_1_writing_nothing(run_cli, demo_index, tmp_path):
    if not torch.cuda.is_available():
        code, _, err = run_cli("concepts", "learn", "--method", "anogen", "--index", demo_index, "--out",
                               tmp_path / "c1", "--model", "tiny", "--device", "cuda")
        assert code == 1 and "CUDA is not available" in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "c1").exists()
    code, _, err = run_cli("concepts", "learn", "--index", demo_index, "--out", tmp_path / "c2",
                           "--model", tmp_path / "no-such-model")
    assert code == 1 and "does not exist" in err and not (tmp_path / "c2").exists()


def test_unknown_method_is_a_usage_error(run_cli, demo_index, tmp_path):
    code, _, err = run_cli("concepts", "learn", "--method", "dreambooth", "--index", demo_index, "--out", tmp_path / "c")
    assert code == 2 and "dreambooth" in err


def test_shot_selection_is_seeded_and_keeps_index_order(demo_index):
    from anogen_data.records import read_index
    from anogen_data.stages.learn import learn_shots_by_defect, pick_shots

    groups = learn_shots_by_defect(read_index(demo_index), demo_index, None)
    assert sorted(groups) == ["scratch", "spot"] and all(len(v) == 2 for v in groups.values())
    import dataclasses

    entries = [dataclasses.replace(groups["scratch"][0], path=f"/shots/{i}.png") for i in range(6)]
    one, again = pick_shots(entries, 3, seed=4), pick_shots(entries, 3, seed=4)
    assert one == again and len(one) == 3
    assert [entries.index(e) for e in one] == sorted(entries.index(e) for e in one)
    assert pick_shots(entries, 0, seed=4) == entries


def test_index_without_learn_shots_for_the_defect_is_a_clear_error(run_cli, demo_index, tmp_path):
    code, _, err = run_cli("concepts", "learn", "--index", demo_index, "--out", tmp_path / "c",
                           "--model", "tiny", "--defect", "hole")
    assert code == 1 and "no role 'learn' anomalies for defect type 'hole'" in err
    assert not (tmp_path / "c").exists()
