"""Models: output shapes, loss falling on a tiny overfit, identical weights under one seed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from anogen_data.detector.data import DetectorTrainSet
from anogen_data.detector.model import build_model
from anogen_data.detector.recipes import RECIPES
from anogen_data.detector.train import DEFAULT_P_CUTOFF, predict_maps, train_loop


def _train(kind, good, anomalies, teacher, *, epochs, seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(kind, base_width=8, image_size=64, teacher=teacher)
        data = DetectorTrainSet(good[:4], anomalies[:4], (64, 64), mix=RECIPES[kind].mix, length=8, seed=seed)
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


@pytest.mark.parametrize("kind", ["unet", "draem", "destseg"])
def test_loss_falls_on_tiny_overfit(kind, demo_items, tiny_teacher):
    good, anomalies = demo_items
    _, curve = _train(kind, good, anomalies, tiny_teacher, epochs=10 if kind == "draem" else 6)  # draem: lr x0.1 at 4/7
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


def _box_items(demo_items):
    from dataclasses import replace

    good, anomalies = demo_items
    spots = [a for a in anomalies if "/spot/" in Path(a.image).as_posix()]  # blobs: the box is mostly defect
    return good[:4], [replace(a, mask_quality="box") for a in spots[:4]]


def test_default_schedule_gives_every_box_pixel_a_target_at_the_first_step(demo_items):
    """At initialisation P(defect) = PRIOR = 0.01 < the DRAEM cutoff 0.1: the default cutoff warm-up
    must still keep every box pixel of a box-labelled sample in the loss (0 of them without it)."""
    from anogen_data.detector.loss import ramped_cutoff, weak_loss_mask
    from anogen_data.detector.train import schedule

    good, boxed = _box_items(demo_items)
    data = DetectorTrainSet(good, boxed, (64, 64), mix=RECIPES["unet"].mix, length=8, seed=0)
    batch = torch.utils.data.default_collate([data[1], data[3]])
    assert batch["is_box"].all() and batch["target"].sum() > 0
    torch.manual_seed(0)
    prob = torch.sigmoid(build_model("unet", 8, 64)(batch["image"])["logits"])
    plan = schedule(RECIPES["unet"], total_steps=100, cutoff_warmup_steps=None)
    assert plan["warmup"] == 25
    kept = weak_loss_mask(prob, batch["target"], batch["is_box"], ramped_cutoff(0.1, 0, plan["warmup"]))
    assert kept[batch["target"] > 0].all()
    no_ramp = weak_loss_mask(prob, batch["target"], batch["is_box"], ramped_cutoff(0.1, 0, 0))
    assert not no_ramp[batch["target"] > 0].any()  # the bug the warm-up fixes


@pytest.mark.slow
@pytest.mark.parametrize("kind,epochs", [("unet", 60), ("draem", 60), ("destseg", 80)])
def test_box_labelled_defects_are_learned_by_every_detector(kind, epochs, demo_items, tiny_teacher):
    """Tiny overfit on 4 box-labelled "spot" anomalies with each recipe's loss and the default schedule:
    the defect pixels end above P = 0.5, the pixels outside the boxes below it. (Thin diagonal scratches
    fill a few % of their box; from 4 images no weak label can say which box pixels they are.)"""
    good, boxed = _box_items(demo_items)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(kind, base_width=8, image_size=64, teacher=tiny_teacher)
        data = DetectorTrainSet(good, boxed, (64, 64), mix=("clean", "generated"), length=8, seed=0)
        train_loop(model, data, epochs=epochs, batch_size=4, lr=3e-3, seed=0, p_cutoff=DEFAULT_P_CUTOFF[kind])
    images = torch.stack([torch.from_numpy(data._float(a.image).transpose(2, 0, 1).copy()) for a in boxed])
    defect = torch.stack([torch.from_numpy(data._load(a.mask, is_mask=True) > 127) for a in boxed])
    box = torch.stack([torch.from_numpy(data._box_target(m.numpy().astype("float32")) > 0) for m in defect])
    prob = predict_maps(model, images)[:, 0]
    assert prob[defect].mean() > 0.5, prob[defect].mean()
    assert prob[~box].mean() < 0.5 and (prob[~box] < 0.5).float().mean() > 0.95


def test_clean_teacher_maps_are_cached_by_clean_id(demo_items, tiny_teacher):
    """DeSTSeg's teacher pass on un-augmented clean images runs once per image and run, with the same maps."""
    from anogen_data.detector.train import clean_teacher_features, make_loader

    good, anomalies = demo_items
    model = build_model("destseg", 4, 64, tiny_teacher)
    data = DetectorTrainSet(good[:3], [], (64, 64), mix=("perlin",), length=8, seed=0)
    calls = []
    forward = model.teacher.forward_features
    model.teacher.forward_features = lambda x: calls.append(len(x)) or forward(x)
    cache: dict = {}
    for epoch in range(2):
        data.set_epoch(epoch)
        for batch in make_loader(data, 4, 0):
            assert (batch["clean_id"] >= 0).all()
            cached = clean_teacher_features(model, batch, cache)
            direct = model.teacher_features(batch["clean"])
            for a, b in zip(cached, direct):
                assert torch.allclose(a, b, atol=1e-5)
    direct_calls = 4  # one direct pass per batch above
    assert sum(calls) - direct_calls * 4 == len(cache) == 3  # each of the 3 clean images computed once
    flipped = DetectorTrainSet(good[:3], [anomalies[0]], (64, 64), mix=("generated",), length=2, seed=0, augment=True)
    assert (next(iter(make_loader(flipped, 2, 0)))["clean_id"] == -1).all()  # augmented: never cached
