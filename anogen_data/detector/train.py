"""Training loop and per-model objectives of the bundled detectors.

Objectives, from the papers:
- ``unet`` (AnomalyDiffusion/DualAnoDiff protocol): focal loss on the defect map.
- ``draem`` (Zavrtanik et al., ICCV 2021): L2 + SSIM between the reconstruction and the clean image,
  plus focal loss on the discriminative map.
- ``destseg`` (Zhang et al., CVPR 2023): cosine distance between the student's features of the input and
  the teacher's features of the clean image (denoising), plus focal + L1 on the segmentation head.
Box-labelled samples (AnoGen, Gui et al., ECCV 2024) use the weak loss mask (``loss.segmentation_loss``).

Determinism on CPU: weights are initialised and trained inside ``torch.random.fork_rng`` seeded with
the run seed, the DataLoader uses ``num_workers=0`` and its own seeded ``torch.Generator``, and every
sample is a pure function of (seed, epoch, index) (``data.DetectorTrainSet``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from anogen_data.detector.loss import ramped_cutoff, segmentation_loss, ssim_loss

DEFAULT_P_CUTOFF = {"unet": 0.1, "draem": 0.1, "destseg": 0.0}  # AnoGen's released scripts (DRAEM 0.1, DeSTSeg 0.0)


def _masked_mean(per_sample: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean of ``per_sample`` (B,) over samples where ``keep`` (B,) is True; 0 when none are."""
    keep = keep.float()
    return (per_sample * keep).sum() / keep.sum().clamp_min(1.0)


def model_loss(model: torch.nn.Module, batch: dict, p_cutoff: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss of one batch and its parts (for the curve).

    Args:
        model: a detector from ``model.build_model`` (its ``kind`` picks the objective).
        batch: ``image``/``clean`` (B, 3, H, W) in [0, 1], ``target`` (B, 1, H, W) {0, 1},
            ``is_box``/``has_clean`` (B,) bool.
        p_cutoff: the weak-loss cutoff for box-labelled samples at this step.
    """
    image, target, is_box = batch["image"], batch["target"], batch["is_box"]
    out = model(image)
    if model.kind == "destseg":
        seg = segmentation_loss(out["logits"], target, is_box, p_cutoff, l1_weight=1.0)
        clean_feats = model.teacher_features(batch["clean"])
        cos = sum(
            (1 - F.cosine_similarity(s, t, dim=1)).flatten(1).mean(1) for s, t in zip(out["student"], clean_feats)
        )
        student = _masked_mean(cos, batch["has_clean"])
        return seg + student, {"seg": seg.item(), "student": student.item()}
    seg = segmentation_loss(out["logits"], target, is_box, p_cutoff)
    if model.kind == "draem":
        keep = batch["has_clean"]
        l2 = _masked_mean((out["recon"] - batch["clean"]).pow(2).flatten(1).mean(1), keep)
        ssim = ssim_loss(out["recon"][keep], batch["clean"][keep]) if keep.any() else l2 * 0
        return seg + l2 + ssim, {"seg": seg.item(), "l2": l2.item(), "ssim": ssim.item()}
    return seg, {"seg": seg.item()}


def train_loop(
    model: torch.nn.Module,
    dataset,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    p_cutoff: float,
    cutoff_warmup_steps: int = 0,
    device: str = "cpu",
    on_step: Callable[[int, float], None] | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` in place with Adam; returns the curve: one dict of mean losses per epoch.

    For identical bytes the caller builds the model and calls this inside one
    ``torch.random.fork_rng(devices=[])`` after ``torch.manual_seed(seed)``.
    ``on_step(step, loss)`` is called after every optimiser step (progress bars).
    """
    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=0, generator=generator,
        drop_last=len(dataset) > batch_size,  # BatchNorm needs more than one sample per batch
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=lr)
    model.to(device).train()
    curve, step = [], 0
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        sums: dict[str, float] = {}
        batches = 0
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            cutoff = ramped_cutoff(p_cutoff, step, cutoff_warmup_steps)
            loss, parts = model_loss(model, batch, cutoff)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            step += 1
            batches += 1
            for key, value in {"loss": loss.item(), **parts}.items():
                sums[key] = sums.get(key, 0.0) + value
            if on_step is not None:
                on_step(step, loss.item())
        curve.append({"epoch": epoch, **{k: v / max(batches, 1) for k, v in sums.items()}})
    return curve


@torch.no_grad()
def predict_maps(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 8, device: str = "cpu") -> torch.Tensor:
    """P(defect) maps (N, 1, H, W) in [0, 1] for images (N, 3, H, W) in [0, 1], in eval mode."""
    model.to(device).eval()
    out = [torch.sigmoid(model(images[i : i + batch_size].to(device))["logits"]).cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.empty(0, 1, *images.shape[-2:])
