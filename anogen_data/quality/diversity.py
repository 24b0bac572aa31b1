"""Diversity inside a defect type: mean pairwise cosine distance of EfficientNet-Lite0 embeddings.

The papers (AnomalyDiffusion, Hu et al., AAAI 2024; DualAnoDiff, Jin et al., CVPR 2025) report IC-LPIPS
(intra-cluster LPIPS) for this role. We have no LPIPS weights offline, so we measure the same idea
(how different the generated defects of one type are from each other) with the backbone we have,
and name it for what it is: ``diversity_effnetlite0`` in [0, 1] for ReLU features (0 = all identical).
"""

from __future__ import annotations

import numpy as np


def mean_pairwise_cosine_distance(embeddings: np.ndarray) -> float | None:
    """Mean of 1 - cos(a, b) over all unordered pairs of rows of float (N, D); None when N < 2."""
    x = np.asarray(embeddings, np.float64)
    if len(x) < 2:
        return None
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sims = x @ x.T
    upper = np.triu_indices(len(x), k=1)
    return float(np.mean(1.0 - sims[upper]))


def summary(values: list[float]) -> dict[str, float] | None:
    """{"mean", "median", "min", "max", "n"} of a list of per-sample values; None when empty."""
    if not values:
        return None
    array = np.asarray(values, np.float64)
    return {"mean": float(array.mean()), "median": float(np.median(array)), "min": float(array.min()),
            "max": float(array.max()), "n": len(values)}
