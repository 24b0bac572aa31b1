"""Models: output shapes, loss falling on a tiny overfit, identical weights under one seed."""

from __future__ import annotations

import pytest
import torch

from anogen_data.detector.data import DetectorTrainSet
from anogen_data.detector.model import build_model
from anogen_data.detector.train import DEFAULT_P_CUTOFF, predict_maps, train_loop


def _train(kind, good, anomalies, teacher, *, epochs, seed=0, mode="half"):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(kind, base_width=8, image_size=64, teacher=teacher)
        data = DetectorTrainSet(good[:4], anomalies[:4], (64, 64), mode=mode, length=8, seed=seed)
        curve = train_loop(model, data, epochs=epochs, batch_size=4, lr=3e-3, seed=seed, p_cutoff=DEFAULT_P_CUTOFF[kind])
    return model, curve


@pytest.mark.parametrize("kind", ["unet", "draem", "destseg"])
def test_output_shapes(kind, tiny_teacher):
    model = build_model(kind, base_width=4, image_size=64, teacher=tiny_teacher)
    out = model(torch.rand(2, 3, 64, 96))
    assert out["logits"].shape == (2, 1, 64, 96)
    if kind == "draem":
        assert out["recon"].shape == (2, 3, 64, 96) and 0 <= out["recon"].min() and out["recon"].max() <= 1
    maps = predict_maps(model, torch.rand(3, 3, 64, 64), batch_size=2)
    assert maps.shape == (3, 1, 64, 64) and 0 <= maps.min() and maps.max() <= 1


@pytest.mark.parametrize("kind,mode", [("unet", "half"), ("draem", "draem"), ("destseg", "half")])
def test_loss_falls_on_tiny_overfit(kind, mode, demo_items, tiny_teacher):
    good, anomalies = demo_items
    _, curve = _train(kind, good, anomalies, tiny_teacher, epochs=6, mode=mode)
    assert curve[-1]["loss"] < 0.7 * curve[0]["loss"], curve


def test_same_seed_same_weights_other_seed_differs(demo_items):
    good, anomalies = demo_items
    a, _ = _train("unet", good, anomalies, None, epochs=1, seed=3)
    b, _ = _train("unet", good, anomalies, None, epochs=1, seed=3)
    c, _ = _train("unet", good, anomalies, None, epochs=1, seed=4)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert any(not torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())


def test_destseg_teacher_stays_frozen(demo_items, tiny_teacher):
    good, anomalies = demo_items
    before = {k: v.clone() for k, v in tiny_teacher.state_dict().items()}
    model, _ = _train("destseg", good, anomalies, tiny_teacher, epochs=1)
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, before[key]), key
