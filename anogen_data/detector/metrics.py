"""Anomaly-detection metrics: image/pixel AUROC, AP, F1-max (torchmetrics) and AUPRO (ours, vectorised).

AUPRO is the per-region-overlap curve of MVTec AD (Bergmann et al., IJCV 2021, "The MVTec Anomaly
Detection Dataset"): for each threshold, PRO = mean over ground-truth connected regions of the fraction
of the region above the threshold, against the false-positive rate over all normal pixels; the area
under that curve up to FPR 0.3, divided by 0.3 (so a perfect detector scores 1.0).

Our AUPRO sorts all pixel scores once and gives each anomalous pixel the weight 1 / (its region's size
x number of regions): the cumulative sum of those weights in descending-score order IS the PRO curve,
and the cumulative count of normal pixels is the FPR curve. No per-threshold labelling, no loops.

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


def _region_weights(masks: Sequence[np.ndarray]) -> tuple[np.ndarray, int]:
    """Per-pixel weight 1/|region| for anomalous pixels (0 for normal), flattened over all maps."""
    from scipy import ndimage

    weights = []
    regions = 0
    for mask in masks:
        labels, count = ndimage.label(np.asarray(mask) > 0)
        sizes = np.bincount(labels.ravel(), minlength=count + 1).astype(np.float64)
        inverse = np.zeros_like(sizes)
        inverse[1:] = 1.0 / sizes[1:]
        weights.append(inverse[labels].ravel())
        regions += count
    return np.concatenate(weights), regions


def aupro(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray], fpr_limit: float = 0.3) -> float:
    """Normalised area under the PRO-vs-FPR curve up to ``fpr_limit``.

    Args:
        maps: score maps, each float (H_i, W_i).
        masks: ground truth, each (H_i, W_i), nonzero = defect.
        fpr_limit: integrate FPR in [0, fpr_limit]; the area is divided by ``fpr_limit``.

    Returns:
        AUPRO in [0, 1]; NaN when there is no anomalous region or no normal pixel.
    """
    scores = np.concatenate([np.asarray(m, dtype=np.float64).ravel() for m in maps])
    weights, regions = _region_weights(masks)
    normal = weights == 0
    if regions == 0 or normal.all() or not normal.any():
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    fpr = np.cumsum(normal[order]) / normal.sum()
    pro = np.cumsum(weights[order]) / regions
    # one curve point per distinct threshold: the last position of each run of equal scores
    last = np.r_[np.nonzero(np.diff(sorted_scores))[0], sorted_scores.size - 1]
    fpr = np.r_[0.0, fpr[last]]
    pro = np.r_[0.0, pro[last]]
    end = np.searchsorted(fpr, fpr_limit, side="right")
    if end < fpr.size:
        x0, x1, y0, y1 = fpr[end - 1], fpr[end], pro[end - 1], pro[end]
        y_limit = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
        fpr = np.r_[fpr[:end], fpr_limit]
        pro = np.r_[pro[:end], y_limit]
    return float(np.trapezoid(pro, fpr) / fpr_limit)


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
