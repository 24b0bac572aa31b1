"""AnoGen's weak loss (hand-made 4x4 case), focal and SSIM losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from anogen_data.detector.loss import focal_loss_map, ramped_cutoff, segmentation_loss, ssim_loss, weak_loss_mask


def _case():
    # 4x4 map, box = the centre 2x2; inside-box probabilities: two above 0.1, two below
    prob = torch.full((1, 1, 4, 4), 0.05)
    prob[0, 0, 1, 1] = 0.6
    prob[0, 0, 1, 2] = 0.3
    prob[0, 0, 2, 1] = 0.08
    prob[0, 0, 2, 2] = 0.02
    box = torch.zeros(1, 1, 4, 4)
    box[0, 0, 1:3, 1:3] = 1
    logits = torch.logit(prob).requires_grad_(True)
    return logits, box


def test_weak_loss_gradient_pattern_on_hand_made_4x4():
    logits, box = _case()
    segmentation_loss(logits, box, torch.tensor([True]), p_cutoff=0.1).backward()
    grad = logits.grad[0, 0]
    # inside the box and below the cutoff: exactly zero gradient
    assert grad[2, 1] == 0 and grad[2, 2] == 0
    # full gradient (the unmasked loss's) outside the box and for inside pixels above the cutoff
    ref_logits = logits.detach().clone().requires_grad_(True)
    focal_loss_map(ref_logits, box).mean().backward()
    keep = torch.ones(4, 4, dtype=torch.bool)
    keep[2, 1] = keep[2, 2] = False
    assert torch.equal(grad[keep], ref_logits.grad[0, 0][keep])
    assert (grad[keep] != 0).all()
    # above-cutoff box pixels are pushed towards defect, outside pixels towards normal
    assert grad[1, 1] < 0 and grad[0, 0] > 0


def test_pixel_labelled_samples_keep_every_pixel():
    logits, box = _case()
    mask = weak_loss_mask(torch.sigmoid(logits), box, torch.tensor([False]), p_cutoff=0.1)
    assert torch.equal(mask, torch.ones_like(mask))
    segmentation_loss(logits, box, torch.tensor([False]), p_cutoff=0.1).backward()
    assert (logits.grad != 0).all()


def test_weak_mask_is_chosen_per_sample():
    logits, box = _case()
    prob = torch.sigmoid(logits).repeat(2, 1, 1, 1)
    mask = weak_loss_mask(prob, box.repeat(2, 1, 1, 1), torch.tensor([True, False]), 0.1)
    assert mask[0].sum() == 14 and mask[1].sum() == 16


def test_cutoff_zero_keeps_box_pixels_with_any_probability():
    logits, box = _case()
    mask = weak_loss_mask(torch.sigmoid(logits), box, torch.tensor([True]), p_cutoff=0.0)
    assert mask.sum() == 16


def test_cutoff_warmup_ramps_linearly():
    assert ramped_cutoff(0.1, 0, 10) == 0.0
    assert abs(ramped_cutoff(0.1, 5, 10) - 0.05) < 1e-12
    assert ramped_cutoff(0.1, 50, 10) == 0.1
    assert ramped_cutoff(0.1, 0, 0) == 0.1


def test_focal_with_gamma_zero_is_bce_and_down_weights_easy_pixels():
    logits = torch.tensor([[[[3.0, -3.0, 0.2]]]])
    target = torch.tensor([[[[1.0, 0.0, 1.0]]]])
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    assert torch.allclose(focal_loss_map(logits, target, gamma=0.0), bce)
    ratio = focal_loss_map(logits, target) / bce
    assert ratio[0, 0, 0, 0] < 0.01 and ratio[0, 0, 0, 2] > 0.1  # easy pixel nearly ignored


def test_ssim_loss_zero_for_identical_and_positive_otherwise():
    img = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert ssim_loss(img, img).abs() < 1e-6
    assert ssim_loss(img.flip(-1), img) > 0.5
