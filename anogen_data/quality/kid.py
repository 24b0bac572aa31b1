"""Kernel Inception Distance, computed on EfficientNet-Lite0 features (so named ``kid_effnetlite0``).

Binkowski et al., *Demystifying MMD GANs*, ICLR 2018: the unbiased squared MMD between two feature sets
with the cubic polynomial kernel k(x, y) = (x . y / d + 1)^3, averaged over random equal-size subsets.
Unlike FID it is unbiased at small n, which is what few-shot eval sets (tens of images) need. The
kernel and estimator are torchmetrics' (``poly_mmd``); we only feed it our own features and draw the
subsets with our own seeded generator. The values are NOT comparable with Inception-based KID numbers
in papers (AnoGen, Gui et al., ECCV 2024; DualAnoDiff, Jin et al., CVPR 2025 report Inception/LPIPS).
"""

from __future__ import annotations

import numpy as np
import torch


def kid(real: np.ndarray, fake: np.ndarray, *, subsets: int = 50, subset_size: int = 100, seed: int = 0,
        degree: int = 3) -> dict[str, float] | None:
    """KID between two feature sets.

    Args:
        real, fake: float (N, D) and (M, D) features (any scale; we use unit-length embeddings).
        subsets: random subsets averaged; 1 when the subset is the whole of both sets (nothing to draw).
        subset_size: capped at min(N, M); at least 2 samples per set are needed.
        seed: subset draws come from ``torch.Generator().manual_seed(seed)``: same seed, same value.
        degree: polynomial kernel degree (3 as in the paper).

    Returns:
        {"mean", "std", "subset_size", "subsets"}; None when either set has fewer than 2 rows. The mean
        is ~0 (can be slightly negative: unbiased) for sets from one distribution and grows with the shift.
    """
    from torchmetrics.image.kid import poly_mmd

    real_t = torch.as_tensor(np.asarray(real), dtype=torch.float64)
    fake_t = torch.as_tensor(np.asarray(fake), dtype=torch.float64)
    n, m = real_t.shape[0], fake_t.shape[0]
    size = min(subset_size, n, m)
    if size < 2:
        return None
    draws = 1 if size == n == m else subsets
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(draws):
        r = real_t[torch.randperm(n, generator=generator)[:size]]
        f = fake_t[torch.randperm(m, generator=generator)[:size]]
        values.append(poly_mmd(r, f, degree=degree))
    stacked = torch.stack(values)
    return {"mean": float(stacked.mean()), "std": float(stacked.std(unbiased=False)), "subset_size": size,
            "subsets": draws}
