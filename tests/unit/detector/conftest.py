"""Detector test fixtures: a tiny stand-in teacher and good/anomaly items from the demo category."""

from __future__ import annotations

import pytest
import torch
from torch import nn


class TinyTeacher(nn.Module):
    """A small random conv pyramid with ``forward_features`` (maps at strides 2, 4, 8, 16), like the
    EfficientNet-Lite0 feature extractor the product uses, at a size that trains in seconds."""

    def __init__(self):
        super().__init__()
        widths = [8, 12, 16, 24]
        layers, c_in = [], 3
        for w in widths:
            layers.append(nn.Sequential(nn.Conv2d(c_in, w, 3, stride=2, padding=1), nn.BatchNorm2d(w), nn.ReLU()))
            c_in = w
        self.stages = nn.ModuleList(layers)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps


@pytest.fixture
def tiny_teacher():
    with torch.random.fork_rng(devices=[]):  # seeded weights without touching the session's global RNG
        torch.manual_seed(0)
        return TinyTeacher()


@pytest.fixture(scope="session")
def demo_items(demo_data_root):
    """(good, anomalies) TrainItems from the session demo category (64 px): test anomalies stand in for
    a version's synthetic ones."""
    from anogen_data.data.mvtec import load_category
    from anogen_data.detector.data import TrainItem

    samples = load_category(demo_data_root, "demo")
    good = [TrainItem(s.path) for s in samples if s.split == "train" and s.label == "good"]
    anomalies = [TrainItem(s.path, s.mask_path) for s in samples if s.label == "anomaly"]
    return good, anomalies


@pytest.fixture(autouse=True)
def _detector_tests_on_one_thread(one_torch_thread):
    """Tiny convolutions run ~10x faster on one thread than on two on a shared 2-core box."""
    yield
