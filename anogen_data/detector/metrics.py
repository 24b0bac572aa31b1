"""Anomaly-detection metrics: image/pixel AUROC, AP, F1-max (torchmetrics) and AUPRO (ours, vectorised).

AUPRO is the per-region-overlap curve of MVTec AD (Bergmann et al., IJCV 2021, "The MVTec Anomaly
Detection Dataset"): for each threshold, PRO = mean over ground-truth connected regions of the fraction
of the region above the threshold, against the false-positive rate over all normal pixels; the area
under that curve up to FPR 0.3, divided by 0.3 (so a perfect detector scores 1.0).

Our AUPRO gives each anomalous pixel the weight 1 / (its region's size x number of regions): their
cumulative sum in descending-score order IS the PRO curve, and the count of normal pixels above a score
is the FPR. Only the anomalous pixels are sorted; normal ones are counted into monotone score cells
(see :func:`aupro`). No per-threshold labelling, no loops over thresholds or regions.

Conventions: score maps are float (H, W), higher = more anomalous, any range; masks are (H, W) with
nonzero (255) = defect. Maps of one call may differ in size (e.g. letterboxed non-square images cropped
back to their content).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def min_max(values) -> torch.Tensor:
    """Scale to [0, 1] (float64). torchmetrics applies a sigmoid to scores outside [0, 1], so we normalise first."""
    values = torch.as_tensor(np.asarray(values)).double()
    low, high = values.min(), values.max()
    if high <= low:
        return torch.zeros_like(values)
    return (values - low) / (high - low)


def _f1_max(scores: torch.Tensor, target: torch.Tensor) -> float:
    from torchmetrics.functional.classification import binary_precision_recall_curve

    precision, recall, _ = binary_precision_recall_curve(scores, target)
    f1 = 2 * precision * recall / (precision + recall).clamp_min(1e-12)
    return float(f1.max())


def binary_metrics(scores, target) -> dict[str, float]:
    """AUROC, AP and F1-max of 1-D ``scores`` against {0,1} ``target`` (scores min-max normalised).

    Returns NaN for all three when ``target`` has a single class (the metrics are undefined).
    """
    from torchmetrics.functional.classification import binary_auroc, binary_average_precision

    scores = min_max(torch.as_tensor(np.asarray(scores)).flatten())
    target = torch.as_tensor(np.asarray(target)).flatten().long()
    positives = int(target.sum())
    if positives == 0 or positives == target.numel():
        return {"auroc": float("nan"), "ap": float("nan"), "f1_max": float("nan")}
    return {
        "auroc": float(binary_auroc(scores, target)),
        "ap": float(binary_average_precision(scores, target)),
        "f1_max": _f1_max(scores, target),
    }


def _anomalous_weights(masks: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, int]:
    """(is-anomalous flags over all pixels, weight 1/|region| per anomalous pixel in the same order, #regions)."""
    from scipy import ndimage

    flags, weights, regions = [], [], 0
    for mask in masks:
        inside = np.asarray(mask) > 0
        flags.append(inside.ravel())
        if inside.any():
            labels, count = ndimage.label(inside)
            sizes = np.bincount(labels.ravel(), minlength=count + 1)
            weights.append(1.0 / sizes[labels[inside]])
            regions += count
    return np.concatenate(flags), np.concatenate(weights) if weights else np.zeros(0), regions


_BINS = 1 << 18  # score cells for AUPRO's counting pass: ~10 normal pixels per cell at 40 maps of 256 px


def _pro_pair_sum(ascending: np.ndarray, cumulative: np.ndarray, values: np.ndarray) -> float:
    """Sum over ``values`` of (weight of anomalous scores > v) + (weight of anomalous scores >= v)."""
    at_or_below = np.searchsorted(ascending, values, side="left")  # anomalous scores < v
    below = at_or_below.copy()
    tied = ascending[np.minimum(at_or_below, ascending.size - 1)] == values
    if tied.any():  # anomalous scores equal to v count as ">=" but not as ">"
        below[tied] = np.searchsorted(ascending, values[tied], side="right")
    return 2 * values.size * cumulative[-1] - cumulative[at_or_below].sum() - cumulative[below].sum()


def aupro(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray], fpr_limit: float = 0.3) -> float:
    """Normalised area under the PRO-vs-FPR curve up to ``fpr_limit`` (exact, every distinct score a threshold).

    The curve only rises at anomalous pixels and only moves right at normal ones, so its area is a sum
    over the normal pixels above the FPR limit: each adds ``1/N_normal`` times the mean of the PRO just
    above and at its score (the trapezoid, which also handles ties). PRO at a score comes from one sort of
    the anomalous pixels (few) and a cumulative sum of their weights. Normal pixels are never sorted:
    they are counted into 2^18 monotone score cells; a cell without anomalous scores contributes
    count x PRO of the cells above it, and only normal pixels sharing a cell with an anomalous score
    (or with the FPR limit) are looked up one by one. Identical to sorting all pixels and integrating
    with the trapezoid rule, interpolating at the limit (the tests check it against that).

    Args:
        maps: score maps, each float (H_i, W_i).
        masks: ground truth, each (H_i, W_i), nonzero = defect.
        fpr_limit: integrate FPR in [0, fpr_limit]; the area is divided by ``fpr_limit``.

    Returns:
        AUPRO in [0, 1]; NaN when there is no anomalous region or no normal pixel.
    """
    scores = np.concatenate([np.asarray(m).ravel() for m in maps])
    if not np.issubdtype(scores.dtype, np.floating):
        scores = scores.astype(np.float64)
    anomalous, weights, regions = _anomalous_weights(masks)
    n_normal = scores.size - int(np.count_nonzero(anomalous))
    if regions == 0 or n_normal == 0:
        return float("nan")
    order = np.argsort(scores[anomalous])
    ascending = scores[anomalous][order]
    cumulative = np.r_[0.0, np.cumsum(weights[order])]
    # monotone cells: a higher cell always means a higher score; equal cells need exact comparison
    lo, hi = float(scores.min()), float(scores.max())
    cells = ((scores - lo) * ((_BINS - 1) / (hi - lo) if hi > lo else 0.0)).astype(np.intp)
    np.clip(cells, 0, _BINS - 1, out=cells)
    anomalous_cells = cells[anomalous]
    normal_counts = np.bincount(cells, minlength=_BINS) - np.bincount(anomalous_cells, minlength=_BINS)
    at_or_above = np.cumsum(normal_counts[::-1])[::-1]  # normal pixels in cell >= c
    rank = int(min(n_normal, max(1, np.ceil(fpr_limit * n_normal))))  # FPR reaches the limit at this normal
    limit_cell = int(np.flatnonzero(at_or_above >= rank)[-1])
    higher = int(at_or_above[limit_cell] - normal_counts[limit_cell])  # normal pixels in cells above
    in_limit_cell = scores[(cells == limit_cell) & ~anomalous]
    k = in_limit_cell.size - (rank - higher)
    limit_score = np.partition(in_limit_cell, k)[k]  # the rank-th largest normal score
    mixed = np.zeros(_BINS, dtype=bool)
    mixed[anomalous_cells] = True
    weight_above = cumulative[-1] - np.cumsum(np.bincount(anomalous_cells, weights=weights, minlength=_BINS))
    up = slice(limit_cell + 1, None)
    pro_sum = 2 * float(np.sum(normal_counts[up] * weight_above[up] * ~mixed[up]))
    exact = scores[mixed[cells] & (cells > limit_cell) & ~anomalous]
    pro_sum += _pro_pair_sum(ascending, cumulative, exact)
    pro_sum += _pro_pair_sum(ascending, cumulative, in_limit_cell[in_limit_cell > limit_score])
    area = pro_sum / (2 * regions * n_normal)
    # the tie group at limit_score crosses fpr_limit: clip its trapezoid with linear interpolation
    x0 = (higher + np.count_nonzero(in_limit_cell > limit_score)) / n_normal
    x1 = (higher + np.count_nonzero(in_limit_cell >= limit_score)) / n_normal
    y0 = (cumulative[-1] - cumulative[np.searchsorted(ascending, limit_score, side="right")]) / regions
    y1 = (cumulative[-1] - cumulative[np.searchsorted(ascending, limit_score, side="left")]) / regions
    x_end = min(fpr_limit, x1)
    y_end = y0 + (y1 - y0) * (x_end - x0) / (x1 - x0)
    area += (x_end - x0) * (y0 + y_end) / 2
    return float(area / fpr_limit)


def image_scores_from_maps(maps: torch.Tensor, pool: int = 0) -> torch.Tensor:
    """Image score = max of the (optionally mean-pooled) map, as in DRAEM. maps: (B, 1, H, W) -> (B,)."""
    if pool > 1:
        maps = torch.nn.functional.avg_pool2d(maps, pool, stride=1, padding=pool // 2, count_include_pad=False)
    return maps.flatten(1).amax(dim=1)


def evaluate(
    image_scores: Sequence[float],
    labels: Sequence[int],
    maps: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    fpr_limit: float = 0.3,
) -> dict[str, float]:
    """All benchmark metrics at once.

    Args:
        image_scores: one score per image (higher = more anomalous).
        labels: 1 for anomalous images, 0 for good ones.
        maps: per-image score maps (H_i, W_i); masks: matching ground truth, nonzero = defect.

    Returns:
        {"image_auroc", "image_ap", "image_f1_max", "pixel_auroc", "pixel_ap", "pixel_f1_max", "aupro"}.
    """
    image = binary_metrics(image_scores, labels)
    pixel_scores = np.concatenate([np.asarray(m, dtype=np.float32).ravel() for m in maps])
    pixel_target = np.concatenate([(np.asarray(m) > 0).ravel() for m in masks])
    pixel = binary_metrics(pixel_scores, pixel_target)
    out = {f"image_{k}": v for k, v in image.items()}
    out.update({f"pixel_{k}": v for k, v in pixel.items()})
    out["aupro"] = aupro(maps, masks, fpr_limit)
    return out
