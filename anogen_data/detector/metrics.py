"""Anomaly-detection metrics: image/pixel AUROC, AP, F1-max and PR curves (torchmetrics), AUPRO (ours, vectorised).

AUPRO is the per-region-overlap curve of MVTec AD (Bergmann et al., IJCV 2021, "The MVTec Anomaly
Detection Dataset"): for each threshold, PRO = mean over ground-truth connected regions of the fraction
of the region above the threshold, against the false-positive rate over all normal pixels; the area
under that curve up to FPR 0.3, divided by 0.3 (so a perfect detector scores 1.0). Regions are
8-connected, as in MVTec's official evaluation script and anomalib (and our COCO writer and filters):
two defect pixels touching only at a corner are one region.

Our AUPRO gives each anomalous pixel the weight 1 / (its region's size x number of regions): their
sum above a score IS the PRO there, and the count of normal pixels above a score is the FPR. Only the
pixels above the FPR limit matter; the normal ones there are counted into monotone score cells and
only those sharing a cell with an anomalous score are sorted (see :func:`aupro`). No per-threshold
labelling, no loops over thresholds or regions, no sort of all pixels.

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


CURVE_POINTS = 200  # PR-curve rows written per curve: enough for a smooth plot, small for DVC and git


def pr_rows(precision: torch.Tensor, recall: torch.Tensor, max_points: int = CURVE_POINTS) -> list[dict]:
    """A torchmetrics PR curve as DVC plot rows ``[{"recall", "precision"}]``, recall ascending.

    The rows run from (recall 0, precision 1) to (recall 1, the positive fraction). Longer curves keep
    both ends and, for each of an even recall grid, the first point reaching it (the top of that step),
    so at most ``max_points`` rows.
    """
    recall, precision = recall.flip(0).numpy(), precision.flip(0).numpy()
    keep = np.arange(recall.size)
    if recall.size > max_points:
        grid = np.searchsorted(recall, np.linspace(0.0, 1.0, max_points - 2)).clip(0, recall.size - 1)
        keep = np.unique(np.r_[0, grid, recall.size - 1])
    return [{"recall": round(float(recall[i]), 6), "precision": round(float(precision[i]), 6)} for i in keep]


def binary_metrics_and_curve(scores, target, max_points: int = CURVE_POINTS) -> tuple[dict[str, float], list[dict]]:
    """AUROC, AP and F1-max of 1-D ``scores`` against {0,1} ``target``, and the PR curve as :func:`pr_rows`.

    Scores are min-max normalised; one torchmetrics PR curve gives AP (torchmetrics' own step sum
    -sum(diff(recall) * precision[:-1]), as ``binary_average_precision``), F1-max and the rows.
    Returns NaN metrics and no rows when ``target`` has a single class (the metrics are undefined).
    """
    from torchmetrics.functional.classification import binary_auroc, binary_precision_recall_curve

    scores = min_max(torch.as_tensor(np.asarray(scores)).flatten())
    target = torch.as_tensor(np.asarray(target)).flatten().long()
    positives = int(target.sum())
    if positives == 0 or positives == target.numel():
        return {"auroc": float("nan"), "ap": float("nan"), "f1_max": float("nan")}, []
    precision, recall, _ = binary_precision_recall_curve(scores, target)
    f1 = 2 * precision * recall / (precision + recall).clamp_min(1e-12)
    metrics = {
        "auroc": float(binary_auroc(scores, target)),
        "ap": float(-torch.sum((recall[1:] - recall[:-1]) * precision[:-1])),
        "f1_max": float(f1.max()),
    }
    return metrics, pr_rows(precision, recall, max_points)


def binary_metrics(scores, target) -> dict[str, float]:
    """AUROC, AP and F1-max of 1-D ``scores`` against {0,1} ``target`` (see :func:`binary_metrics_and_curve`)."""
    return binary_metrics_and_curve(scores, target)[0]


def _region_weights(masks: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, int]:
    """(is-anomalous flags over all pixels, weight 1/|region| per anomalous pixel in the same order, #regions).

    Regions are 8-connected (MVTec AD's official evaluation, anomalib), labelled by OpenCV on uint8 views.
    """
    import cv2

    arrays = [np.asarray(mask) for mask in masks]
    anomalous = np.concatenate([a.ravel() for a in arrays]) > 0
    region_ids, regions, offset = [], 0, 0
    for a in arrays:
        if anomalous[offset : offset + a.size].any():
            inside = np.ascontiguousarray(a > 0)
            count, labels = cv2.connectedComponents(inside.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
            region_ids.append(np.extract(inside, labels) + (regions - 1))  # row-major, like the flags
            regions += count - 1
        offset += a.size
    if not regions:
        return anomalous, np.zeros(0), 0
    ids = np.concatenate(region_ids)
    return anomalous, 1.0 / np.bincount(ids, minlength=regions)[ids], regions


_BINS = 1 << 18  # score cells over the candidate normals: a few normal pixels per cell at 40 maps of 256 px
_SAMPLE = 1 << 15  # normal pixels sampled (strided) to bound the FPR-limit score from below


def _cells(values: np.ndarray, lo, hi, bins: int) -> np.ndarray:
    """Monotone cell index in [0, bins - 1] of each value in [lo, hi] (rounding is monotone, so is the floor)."""
    scale = values.dtype.type((bins - 1) / (hi - lo) if hi > lo else 0.0)
    cells = values - values.dtype.type(lo)
    cells *= scale
    return np.clip(cells, 0, bins - 1, out=cells).astype(np.intp)


def _candidate_normals(scores: np.ndarray, anomalous: np.ndarray, n_normal: int, rank: int) -> np.ndarray:
    """Normal scores at or above a lower bound of the ``rank``-th largest one (all of them where unsure).

    The bound is a slightly lower quantile of a strided sample; the count check makes it exact.
    """
    step = max(1, scores.size // _SAMPLE)
    sample = np.extract(~anomalous[::step], scores[::step])
    k = int(np.ceil(min(1.0, rank / n_normal + 0.02) * sample.size))
    if 0 < k < sample.size:
        bound = np.partition(sample, sample.size - k)[sample.size - k]
        keep = scores >= bound
        keep[np.flatnonzero(anomalous)] = False  # (an index array: far faster than a mask)
        candidates = np.extract(keep, scores)
        if candidates.size >= rank:
            return candidates
    return np.extract(~anomalous, scores)


def _limit_score(normals: np.ndarray, cells: np.ndarray, counts: np.ndarray, rank: int):
    """(the ``rank``-th largest normal score, #normals above it, #normals at or above it), from the cell counts."""
    at_or_above = np.cumsum(counts[::-1])[::-1]  # normal pixels in cell >= c
    limit_cell = int(np.flatnonzero(at_or_above >= rank)[-1])
    higher = int(at_or_above[limit_cell] - counts[limit_cell])  # normal pixels in cells above
    in_limit_cell = np.extract(cells == limit_cell, normals)
    k = in_limit_cell.size - (rank - higher)
    limit_score = np.partition(in_limit_cell, k)[k]
    n_above = higher + int(np.count_nonzero(in_limit_cell > limit_score))
    return limit_score, n_above, higher + int(np.count_nonzero(in_limit_cell >= limit_score))


def _normal_counts_at(sorted_normals: np.ndarray, normals_above_cell: np.ndarray, values: np.ndarray, cells):
    """(#normals >= v, #normals > v) for each anomalous ``v``: whole cells above v's, plus its own cell's pixels."""
    above = normals_above_cell[cells]
    n = sorted_normals.size
    at_or_above = above + n - np.searchsorted(sorted_normals, values, side="left")
    return at_or_above, above + n - np.searchsorted(sorted_normals, values, side="right")


def aupro(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray], fpr_limit: float = 0.3) -> float:
    """Normalised area under the PRO-vs-FPR curve up to ``fpr_limit`` (exact, every distinct score a threshold).

    The curve moves right by ``1/N_normal`` at each normal pixel, at the mean of the PRO just above and at
    its score (the trapezoid, which also handles ties), so its area up to the limit is a sum over the
    normal pixels above the limit score; swapping the sums, each anomalous pixel above the limit adds its
    weight times the number of normal pixels between the limit and its score (half for equal scores).
    Only normal scores near and above the limit are kept (bounded from a strided sample, checked by
    count) and counted into 2^18 monotone score cells; normal pixels sharing a cell with an anomalous
    score are sorted and looked up exactly. Nothing else is sorted, no loop over thresholds or regions.
    Identical to sorting all pixels and integrating with the trapezoid rule, interpolating at the limit
    (the tests check it against that).

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
    anomalous, weights, regions = _region_weights(masks)
    abnormal = np.extract(anomalous, scores)
    n_normal = scores.size - abnormal.size
    if regions == 0 or n_normal == 0:
        return float("nan")
    rank = int(min(n_normal, max(1, np.ceil(fpr_limit * n_normal))))  # FPR reaches the limit at this normal
    normals = _candidate_normals(scores, anomalous, n_normal, rank)
    lo, hi = normals.min(), max(normals.max(), abnormal.max())
    cells = _cells(normals, lo, hi, _BINS)
    counts = np.bincount(cells, minlength=_BINS)
    limit_score, n_above, n_at = _limit_score(normals, cells, counts, rank)
    up = abnormal > limit_score
    values, value_weights = abnormal[up], weights[up]
    value_cells = _cells(values, lo, hi, _BINS)
    mixed = np.zeros(_BINS, dtype=bool)
    mixed[value_cells] = True
    pure_above = np.r_[np.cumsum(np.where(mixed, 0, counts)[::-1])[::-1][1:], 0]  # unmixed normals in cells > c
    shared = np.sort(np.extract(mixed[cells], normals))
    ge, gt = _normal_counts_at(shared, pure_above, values, value_cells)
    between = (n_above - ge) + 0.5 * (ge - gt)  # normals in (limit, v), plus half of those equal to v
    area = float(np.sum(value_weights * between)) / (regions * n_normal)  # np.sum: no BLAS threads
    # the tie group at limit_score crosses fpr_limit: clip its trapezoid with linear interpolation
    x0, x1 = n_above / n_normal, n_at / n_normal
    y0 = float(value_weights.sum()) / regions
    y1 = y0 + float(weights[abnormal == limit_score].sum()) / regions
    x_end = min(fpr_limit, x1)
    y_end = y0 + (y1 - y0) * (x_end - x0) / (x1 - x0)
    area += (x_end - x0) * (y0 + y_end) / 2
    return float(area / fpr_limit)


def image_score(score_map: torch.Tensor, pool: int) -> float:
    """An image's anomaly score from its map: the max of the map mean-pooled over ``pool`` x ``pool`` (DRAEM).

    Args:
        score_map: float (H, W), the image's content only (letterbox padding cropped away).
        pool: kernel side; made odd and no larger than the map (1 = the plain max).
    """
    k = max(1, min(pool, *score_map.shape) | 1)
    pooled = torch.nn.functional.avg_pool2d(score_map[None, None], k, stride=1, padding=k // 2, count_include_pad=False)
    return float(pooled.max())


def evaluate_with_curves(
    image_scores: Sequence[float],
    labels: Sequence[int],
    maps: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    fpr_limit: float = 0.3,
    max_points: int = CURVE_POINTS,
) -> tuple[dict[str, float], dict[str, list[dict]]]:
    """All benchmark metrics at once, and the image- and pixel-level PR curves.

    Args:
        image_scores: one score per image (higher = more anomalous).
        labels: 1 for anomalous images, 0 for good ones.
        maps: per-image score maps (H_i, W_i); masks: matching ground truth, nonzero = defect.
        max_points: rows kept per PR curve (:func:`pr_rows`).

    Returns:
        ({"image_auroc", "image_ap", "image_f1_max", "pixel_auroc", "pixel_ap", "pixel_f1_max", "aupro"},
        {"image": rows, "pixel": rows}) with rows ``[{"recall", "precision"}]`` (empty for one class).
    """
    image, image_curve = binary_metrics_and_curve(image_scores, labels, max_points)
    pixel_scores = np.concatenate([np.asarray(m, dtype=np.float32).ravel() for m in maps])
    pixel_target = np.concatenate([(np.asarray(m) > 0).ravel() for m in masks])
    pixel, pixel_curve = binary_metrics_and_curve(pixel_scores, pixel_target, max_points)
    out = {f"image_{k}": v for k, v in image.items()}
    out.update({f"pixel_{k}": v for k, v in pixel.items()})
    out["aupro"] = aupro(maps, masks, fpr_limit)
    return out, {"image": image_curve, "pixel": pixel_curve}


def evaluate(image_scores, labels, maps, masks, fpr_limit: float = 0.3) -> dict[str, float]:
    """The metrics of :func:`evaluate_with_curves` alone."""
    return evaluate_with_curves(image_scores, labels, maps, masks, fpr_limit)[0]
