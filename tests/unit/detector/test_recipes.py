"""The papers' recipes: each one's data mix (counted per batch over an epoch), loss settings and schedule."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from anogen_data.data.image_io import write_png
from anogen_data.detector.data import DetectorTrainSet, TrainItem
from anogen_data.detector.loss import focal_loss_map
from anogen_data.detector.model import build_model
from anogen_data.detector.recipes import RECIPES, get_recipe
from anogen_data.detector.train import make_loader, model_loss, schedule, step_lr

# the released shares per recipe (gaobb/AnoGen DRAEM/data_loader.py, DeSTSeg/data/mvtec_dataset.py; U-Net protocol)
SHARES = {
    "draem": {"clean": 0.5, "perlin": 0.25, "generated": 0.25},
    "destseg": {"clean": 0.0, "perlin": 0.5, "generated": 0.5},
    "unet": {"clean": 0.5, "perlin": 0.0, "generated": 0.5},
}


def _kind(sample_is_box: bool, target_sum: float) -> str:
    """Generated samples are the box-labelled version anomalies; Perlin ones have a pixel target; clean none."""
    if sample_is_box:
        return "generated"
    return "perlin" if target_sum > 0 else "clean"


def _count_batches(data: DetectorTrainSet, batch_size: int = 8) -> list[Counter]:
    counts = []
    for batch in make_loader(data, batch_size, seed=0):
        sums = batch["target"].flatten(1).sum(1)
        counts.append(Counter(_kind(bool(b), float(s)) for b, s in zip(batch["is_box"], sums)))
    return counts


@pytest.mark.parametrize("name", list(RECIPES))
def test_each_recipe_mix_holds_its_shares_in_every_batch_of_an_epoch(name, demo_items):
    good, anomalies = demo_items
    boxed = [TrainItem(a.image, a.mask, "box") for a in anomalies]
    data = DetectorTrainSet(good, boxed, (64, 64), mix=RECIPES[name].mix, length=32, seed=0)
    batches = _count_batches(data)
    assert len(batches) == 4
    for counts in batches:
        assert {k: counts[k] / 8 for k in SHARES[name]} == SHARES[name], (name, counts)
    assert RECIPES[name].shares() == SHARES[name]


@pytest.mark.parametrize("name", list(RECIPES))
def test_each_recipe_baseline_fills_the_generated_share_with_perlin(name, demo_items):
    good, _ = demo_items
    data = DetectorTrainSet(good, [], (64, 64), mix=RECIPES[name].mix, length=16, seed=1)
    total = sum(_count_batches(data), Counter())
    share = SHARES[name]
    assert total["perlin"] == 16 * (share["perlin"] + share["generated"]) and total["clean"] == 16 * share["clean"]


def test_released_loss_settings_and_schedules():
    draem, destseg, unet = RECIPES["draem"], RECIPES["destseg"], RECIPES["unet"]
    assert (draem.model, draem.gamma, draem.l1_weight, draem.p_cutoff) == ("draem", 2.0, 0.0, 0.1)
    assert (destseg.model, destseg.gamma, destseg.l1_weight, destseg.p_cutoff) == ("destseg", 4.0, 1.0, 0.0)
    assert (unet.model, unet.gamma, unet.l1_weight, unet.p_cutoff) == ("unet", 2.0, 0.0, 0.1)
    # DRAEM: MultiStepLR at epochs 400 and 600 of 700; DeSTSeg: the student alone for 1000 of 5000 steps
    assert schedule(draem, 700, None)["milestones"] == [400, 600]
    assert schedule(destseg, 5000, None) == {"student_steps": 1000, "warmup": 1000, "milestones": []}
    assert schedule(unet, 100, 7) == {"student_steps": 0, "warmup": 7, "milestones": []}
    milestones = schedule(draem, 70, None)["milestones"]
    assert [step_lr(1e-3, s, milestones) for s in (0, 39, 40, 59, 60, 69)] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5])
    with pytest.raises(ValueError, match="choose one of draem, destseg, unet"):
        get_recipe("patchcore")


def _batch(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(2, 3, 64, 64, generator=g)
    target = torch.zeros(2, 1, 64, 64)
    target[:, :, 20:40, 10:30] = 1
    return {"image": image, "clean": image.clone(), "target": target,
            "is_box": torch.tensor([False, False]), "has_clean": torch.tensor([True, True])}


@pytest.mark.parametrize("name", ["unet", "draem"])
def test_segmentation_loss_uses_the_recipe_gamma(name):
    torch.manual_seed(0)
    model = build_model(name, 4, 64).eval()
    batch = _batch()
    with torch.no_grad():
        logits = model(batch["image"])["logits"]
        loss, parts = model_loss(model, batch, 0.1, RECIPES[name])
    assert parts["seg"] == pytest.approx(focal_loss_map(logits, batch["target"], gamma=2.0).mean().item(), rel=1e-5)


def test_destseg_student_first_then_head_only(tiny_teacher):
    """DeSTSeg's released order: the student phase moves only the student, the segmentation phase only the
    head, whose loss is focal with gamma 4 plus L1 on P(defect)."""
    torch.manual_seed(0)
    model = build_model("destseg", 4, 64, tiny_teacher)
    batch, recipe = _batch(), RECIPES["destseg"]
    student = list(model.student.parameters())
    head = list(model.head.parameters())
    loss, parts = model_loss(model, batch, 0.0, recipe, phase="student")
    loss.backward()
    assert set(parts) == {"student"} and all(p.grad is None for p in head)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student)
    model.zero_grad(set_to_none=True)
    model.student.eval()
    loss, parts = model_loss(model, batch, 0.0, recipe, phase="seg")
    loss.backward()
    assert set(parts) == {"seg"} and all(p.grad is None for p in student)
    assert all(p.grad is not None for p in head)
    with torch.no_grad():
        logits = model(batch["image"])["logits"]
    prob = torch.sigmoid(logits)
    expected = (focal_loss_map(logits, batch["target"], gamma=4.0) + (prob - batch["target"]).abs()).mean()
    assert parts["seg"] == pytest.approx(expected.item(), rel=1e-4)


def test_textures_folder_fills_perlin_anomalies(demo_items, tmp_path):
    """With a texture folder the Perlin pixels come from it (DRAEM's DTD), not from the good images: a
    black texture stays black under colour jitter, so every anomalous pixel is beta x the clean pixel."""
    good, _ = demo_items
    write_png(tmp_path / "black.png", np.zeros((40, 50, 3), np.uint8))  # any size: squashed to the canvas
    own = DetectorTrainSet(good, [], (64, 64), mix=("perlin",), length=6, seed=0)
    dtd = DetectorTrainSet(good, [], (64, 64), mix=("perlin",), length=6, seed=0, textures=[str(tmp_path / "black.png")])
    brighter = []
    for i in range(6):
        for data, is_dtd in ((dtd, True), (own, False)):
            sample = data[i]
            inside = sample["target"][0] > 0
            assert inside.any()
            darker = (sample["image"][:, inside] <= sample["clean"][:, inside] + 1e-6).all()
            assert darker or not is_dtd
            if not is_dtd:
                brighter.append(not darker)
    assert any(brighter)  # the in-category textures do brighten some anomalies
