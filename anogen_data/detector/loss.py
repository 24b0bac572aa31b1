"""Detector losses: focal (DRAEM, DeSTSeg), SSIM (DRAEM), and AnoGen's weakly-supervised loss mask.

- Focal loss: Lin et al., ICCV 2017; DRAEM (Zavrtanik et al., ICCV 2021) trains its discriminative
  network with it, DeSTSeg (Zhang et al., CVPR 2023) its segmentation head (with an L1 term).
- SSIM loss: DRAEM's reconstructive term, 1 - SSIM (torchmetrics' differentiable SSIM).
- Weak loss: AnoGen (Gui et al., ECCV 2024, Sec. 3.3) for samples labelled only by a box. The per-pixel
  segmentation loss is multiplied by a mask that keeps every pixel outside the box (trained as normal)
  and, inside the box, only the pixels whose current predicted anomaly probability (detached) exceeds
  ``p_cutoff``: the detector decides which box pixels are defect and is never told that the background
  inside a box is defect.

Conventions: logits and probabilities are (B, 1, H, W); targets are float (B, 1, H, W) in {0, 1},
1 = defect; images are float in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def focal_loss_map(
    logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: float | None = None
) -> torch.Tensor:
    """Per-pixel binary focal loss, same shape as ``logits``.

    Args:
        logits: (B, 1, H, W) raw scores; sigmoid gives P(defect).
        target: (B, 1, H, W) in {0, 1}.
        gamma: focusing exponent (2 in DRAEM and DeSTSeg).
        alpha: weight of the defect class (1 - alpha for normal); None (DRAEM's default) weighs both as 1.
    """
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    prob = torch.sigmoid(logits)
    p_true = prob * target + (1 - prob) * (1 - target)
    loss = (1 - p_true).pow(gamma) * ce
    if alpha is None:
        return loss
    return (alpha * target + (1 - alpha) * (1 - target)) * loss


def ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - SSIM (11 px Gaussian window), images (B, C, H, W) in [0, 1]; a scalar to minimise."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return 1 - structural_similarity_index_measure(pred, target, data_range=1.0)


def ramped_cutoff(p_cutoff: float, step: int, warmup_steps: int) -> float:
    """The cutoff at ``step``: linear from 0 (trust the whole box) to ``p_cutoff`` over ``warmup_steps``."""
    if warmup_steps <= 0:
        return p_cutoff
    return p_cutoff * min(1.0, step / warmup_steps)


def weak_loss_mask(prob: torch.Tensor, box: torch.Tensor, is_box_label: torch.Tensor, p_cutoff: float) -> torch.Tensor:
    """AnoGen's loss mask: which pixels contribute to the segmentation loss.

    Args:
        prob: (B, 1, H, W) predicted P(defect); detached here, so the mask carries no gradient.
        box: (B, 1, H, W) in {0, 1}: 1 inside the sample's defect box (or its mask for pixel labels).
        is_box_label: (B,) bool, True where the sample's annotation has ``mask_quality: box``.
        p_cutoff: inside a box keep pixels with prob > p_cutoff (0.1 for DRAEM, 0.0 for DeSTSeg).

    Returns:
        (B, 1, H, W) float in {0, 1}: all ones for pixel-labelled samples; for box-labelled ones, 1
        outside the box and inside where prob > p_cutoff, 0 elsewhere.
    """
    keep_inside = (prob.detach() > p_cutoff).float()
    weak = box * keep_inside + (1 - box)
    full = torch.ones_like(weak)
    return torch.where(is_box_label.view(-1, 1, 1, 1), weak, full)


def segmentation_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    is_box_label: torch.Tensor,
    p_cutoff: float,
    l1_weight: float = 0.0,
    gamma: float = 2.0,
) -> torch.Tensor:
    """Focal (+ optional L1 on probabilities, DeSTSeg) loss under AnoGen's weak mask.

    The masked per-pixel loss is averaged over ALL pixels (not the kept ones), so a kept pixel's
    gradient equals its gradient under the unmasked loss and a dropped pixel's is exactly zero.

    Args:
        logits: (B, 1, H, W); target: (B, 1, H, W) in {0, 1} (the box for box-labelled samples).
        is_box_label: (B,) bool; p_cutoff: see :func:`weak_loss_mask`; l1_weight: DeSTSeg's L1 term;
        gamma: focal exponent (2 DRAEM, 4 in AnoGen's DeSTSeg script).
    """
    prob = torch.sigmoid(logits)
    per_pixel = focal_loss_map(logits, target, gamma=gamma)
    if l1_weight:
        per_pixel = per_pixel + l1_weight * (prob - target).abs()
    mask = weak_loss_mask(prob, target, is_box_label, p_cutoff)
    return (per_pixel * mask).mean()
