"""PatchCore-style baseline: greedy coreset on a hand case, defects score above good pixels on the demo."""

from __future__ import annotations

import numpy as np
import torch

from anogen_data.detector.metrics import binary_metrics
from anogen_data.detector.patchcore import PatchCore, gaussian_blur, greedy_coreset


def test_greedy_coreset_takes_the_farthest_points():
    points = torch.tensor([[0.0], [1.0], [2.0], [10.0], [9.5]])
    chosen = greedy_coreset(points, 3, torch.Generator().manual_seed(0)).tolist()
    assert len(set(chosen)) == 3
    # whatever the start, k-center with 3 picks covers all points within 1.0
    dist = torch.cdist(points, points[chosen]).min(dim=1).values
    assert dist.max() <= 1.0


def test_gaussian_blur_keeps_mass_and_constants():
    flat = torch.full((1, 1, 10, 12), 3.0)
    assert torch.allclose(gaussian_blur(flat, 2.0), flat)


def test_defect_pixels_score_higher_than_good_ones(demo_data_root):
    from anogen_data.data.image_io import read_image, read_mask
    from anogen_data.data.mvtec import load_category
    from anogen_data.features.efficientnet_lite import load_efficientnet_lite0

    samples = load_category(demo_data_root, "demo")

    def tensor(paths):  # 64-px demo upsampled to 256: stride-8 features need room to see a defect
        images = torch.stack([torch.from_numpy(read_image(p).transpose(2, 0, 1) / 255.0).float() for p in paths])
        return torch.nn.functional.interpolate(images, size=256, mode="bilinear", align_corners=False)

    good = tensor([s.path for s in samples if s.split == "train"][:6])
    anomalies = [s for s in samples if s.label == "anomaly"][:3]
    model = PatchCore(load_efficientnet_lite0(), coreset_ratio=0.1).fit(good)
    maps = model.predict(tensor([s.path for s in anomalies]))
    assert maps.shape == (3, 1, 256, 256)
    maps = torch.nn.functional.interpolate(maps, size=64, mode="area")
    masks = np.stack([read_mask(s.mask_path) > 0 for s in anomalies])
    assert binary_metrics(maps[:, 0].numpy(), masks)["auroc"] > 0.9
