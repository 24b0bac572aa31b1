"""PatchCore-style nearest-neighbour detector on good images only: the "no synthetic data" baseline.

Roth et al., "Towards Total Recall in Industrial Anomaly Detection", CVPR 2022: locally aware patch
features from a frozen ImageNet backbone (here EfficientNet-Lite0 strides 8 and 16, the stride-16 map
upsampled, each 3x3-average-pooled), a memory bank of good patches thinned by greedy k-center
coreset selection, and the anomaly score of a patch = distance to its nearest bank patch. It needs no
anomalies at all, which is what a user without our data would run.

Maps are returned at input resolution (B, 1, H, W), Gaussian-smoothed (sigma 4 px as in the paper),
unbounded non-negative distances (min-max normalise before thresholding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def greedy_coreset(features: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of ``count`` rows of ``features`` (N, D) chosen by greedy k-center (farthest point) search.

    Distances are computed in a 128-d random projection, as in PatchCore, to keep it fast.
    """
    n = features.shape[0]
    if count >= n:
        return torch.arange(n)
    proj = features @ torch.randn(features.shape[1], 128, generator=generator) if features.shape[1] > 128 else features
    proj = proj.contiguous()
    chosen = torch.empty(count, dtype=torch.long)
    chosen[0] = int(torch.randint(n, (1,), generator=generator))
    nearest = (proj - proj[chosen[0]]).pow_(2).sum(1)  # squared distances: same argmax, no sqrt
    for k in range(1, count):
        chosen[k] = nearest.argmax()
        torch.minimum(nearest, (proj - proj[chosen[k]]).pow_(2).sum(1), out=nearest)
    return chosen


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, 1, H, W) maps with reflect padding."""
    radius = max(1, int(round(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=maps.dtype)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    pad_h, pad_w = min(radius, maps.shape[-2] - 1), min(radius, maps.shape[-1] - 1)
    out = F.pad(maps, (pad_w, pad_w, 0, 0), mode="reflect")
    out = F.conv2d(out, kernel[radius - pad_w : radius + pad_w + 1].view(1, 1, 1, -1))
    out = F.pad(out, (0, 0, pad_h, pad_h), mode="reflect")
    return F.conv2d(out, kernel[radius - pad_h : radius + pad_h + 1].view(1, 1, -1, 1))


class PatchCore:
    """Fit on good images, score any image.

    Args:
        backbone: module with ``forward_features(x)`` (maps at strides 4, 8, 16, ...; input RGB in [0, 1]).
        coreset_ratio: fraction of good patches kept in the memory bank (PatchCore: 1-10%).
        max_bank: upper bound on the bank size (CPU memory/time knob).
        seed: seeds the coreset start and projection.
    """

    def __init__(self, backbone, coreset_ratio: float = 0.1, max_bank: int = 4000, seed: int = 0, batch_size: int = 8):
        self.backbone = backbone.eval()
        self.coreset_ratio, self.max_bank, self.seed, self.batch_size = coreset_ratio, max_bank, seed, batch_size
        self.bank: torch.Tensor | None = None

    @torch.no_grad()
    def _patches(self, images: torch.Tensor) -> torch.Tensor:
        """(B, D, H/8, W/8) locally aware patch features of images (B, 3, H, W) in [0, 1]."""
        maps = self.backbone.forward_features(images)
        mid, deep = maps[1], maps[2]
        deep = F.interpolate(deep, size=mid.shape[-2:], mode="bilinear", align_corners=False)
        feats = torch.cat([mid, deep], dim=1)
        return F.avg_pool2d(feats, 3, stride=1, padding=1, count_include_pad=False)

    def fit(self, images: torch.Tensor) -> "PatchCore":
        """Build the memory bank from good images (N, 3, H, W) in [0, 1]."""
        chunks = [self._patches(images[i : i + self.batch_size]) for i in range(0, len(images), self.batch_size)]
        feats = torch.cat([c.permute(0, 2, 3, 1).reshape(-1, c.shape[1]) for c in chunks])
        count = min(self.max_bank, max(1, int(len(feats) * self.coreset_ratio)))
        generator = torch.Generator().manual_seed(self.seed)
        self.bank = feats[greedy_coreset(feats, count, generator)]
        return self

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Anomaly maps (B, 1, H, W): nearest-bank distance per patch, upsampled and blurred."""
        if self.bank is None:
            raise RuntimeError("call fit() on good images first")
        out = []
        for i in range(0, len(images), self.batch_size):
            feats = self._patches(images[i : i + self.batch_size])
            b, d, h, w = feats.shape
            dist = torch.cdist(feats.permute(0, 2, 3, 1).reshape(-1, d), self.bank).min(dim=1).values
            maps = F.interpolate(dist.view(b, 1, h, w), size=images.shape[-2:], mode="bilinear", align_corners=False)
            out.append(gaussian_blur(maps, sigma=4.0))
        return torch.cat(out)
