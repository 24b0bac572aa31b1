"""Near-duplicate removal: of samples whose defect crops are nearly identical in feature space, keep one.

Duplicates waste a dataset's budget and inflate its apparent size (generators collapse onto a mode; a
replayed recipe gives the same bytes twice). Similarity is the cosine of unit-length EfficientNet-Lite0
embeddings of the defect crops (``filters.embed``); the check is greedy in record order, so the first
of a group is kept and the result does not depend on batching.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def near_duplicates(embeddings: np.ndarray, eligible: Sequence[bool], threshold: float) -> list[tuple[float, int]]:
    """Greedy near-duplicate scan.

    Args:
        embeddings: float (N, D), unit-length rows, in record order.
        eligible: per sample, whether it passed every other filter; only those can be kept, so only
            they become the "original" that later samples are compared with.
        threshold: cosine similarity above which a sample duplicates an earlier kept one.

    Returns:
        per sample (similarity to the most similar earlier kept sample, its index or -1). A sample is a
        duplicate when the similarity exceeds ``threshold``.
    """
    kept: list[int] = []
    out: list[tuple[float, int]] = []
    for i, vector in enumerate(embeddings):
        if kept:
            sims = embeddings[kept] @ vector
            best = int(np.argmax(sims))
            sim, of = float(sims[best]), kept[best]
        else:
            sim, of = 0.0, -1
        out.append((sim, of))
        if eligible[i] and sim <= threshold:
            kept.append(i)
    return out
