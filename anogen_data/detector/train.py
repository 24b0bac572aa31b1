"""Training loop and per-model objectives of the bundled detectors.

Objectives, from the papers:
- ``unet`` (AnomalyDiffusion/DualAnoDiff protocol): focal loss on the defect map.
- ``draem`` (Zavrtanik et al., ICCV 2021): L2 + SSIM between the reconstruction and the clean image,
  plus focal loss on the discriminative map.
- ``destseg`` (Zhang et al., CVPR 2023): cosine distance between the student's features of the input and
  the teacher's features of the clean image (denoising), plus focal + L1 on the segmentation head; with
  the ``destseg`` recipe the student trains alone first, then only the head (as released).
Loss settings and schedules come from ``recipes.Recipe``.
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
from anogen_data.detector.recipes import RECIPES, Recipe

DEFAULT_P_CUTOFF = {r.model: r.p_cutoff for r in RECIPES.values()}  # AnoGen's released scripts (DRAEM 0.1, DeSTSeg 0.0)
# Why a warm-up by default: our heads start at P(defect) = PRIOR = 0.01 (model.prior_head), below the released
# DRAEM cutoff 0.1, so without a ramp not one box pixel would ever get a positive target and box-labelled
# (AnoGen) samples would only teach "normal". The released DRAEM avoids this by starting near P = 0.5 (a
# softmax head); a cutoff ramped from 0 over the first quarter of the segmentation steps gives every box
# pixel a positive target from step 1 and keeps our faster-converging prior.
AUTO_WARMUP_SHARE = 0.25


def _masked_mean(per_sample: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean of ``per_sample`` (B,) over samples where ``keep`` (B,) is True; 0 when none are."""
    keep = keep.float()
    return (per_sample * keep).sum() / keep.sum().clamp_min(1.0)


def clean_teacher_features(model: torch.nn.Module, batch: dict, cache: dict | None) -> list[torch.Tensor]:
    """The frozen teacher's maps of ``batch["clean"]``, taken from ``cache`` (clean_id -> per-scale maps
    (1, C, h, w)) where known: clean images are never augmented, so each is computed once per run.
    Samples with ``clean_id`` -1 (or no cache) are computed every time."""
    ids = batch.get("clean_id")
    if cache is None or ids is None or bool((ids < 0).any()):
        return model.teacher_features(batch["clean"])
    keys = ids.tolist()
    missing = {key: k for k, key in reversed(list(enumerate(keys))) if key not in cache}  # key -> first row
    if missing:
        maps = model.teacher_features(batch["clean"][list(missing.values())])
        for j, key in enumerate(missing):
            cache[key] = [m[j : j + 1].clone() for m in maps]
    return [torch.cat([cache[key][level] for key in keys]) for level in range(len(cache[keys[0]]))]


def _student_loss(model: torch.nn.Module, student: list[torch.Tensor], batch: dict, cache: dict | None = None) -> torch.Tensor:
    """DeSTSeg's denoising loss: cosine distance of the student's maps of the input to the teacher's maps
    of the clean image, summed over scales, averaged over samples whose clean image is known."""
    clean_feats = clean_teacher_features(model, batch, cache)
    cos = sum((1 - F.cosine_similarity(s, t, dim=1)).flatten(1).mean(1) for s, t in zip(student, clean_feats))
    return _masked_mean(cos, batch["has_clean"])


def model_loss(
    model: torch.nn.Module, batch: dict, p_cutoff: float, recipe: Recipe | None = None, phase: str = "joint",
    cache: dict | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss of one batch and its parts (for the curve).

    Args:
        model: a detector from ``model.build_model`` (its ``kind`` picks the objective).
        batch: ``image``/``clean`` (B, 3, H, W) in [0, 1], ``target`` (B, 1, H, W) {0, 1},
            ``is_box``/``has_clean`` (B,) bool.
        p_cutoff: the weak-loss cutoff for box-labelled samples at this step.
        recipe: focal gamma and L1 weight; None = the recipe named after the model.
        phase: "joint" (every term), or for DeSTSeg's two-step schedule "student" (only the denoising
            student) / "seg" (only the segmentation head; the student runs frozen without gradients).
        cache: DeSTSeg's teacher maps of clean images by ``clean_id`` (see :func:`clean_teacher_features`).
    """
    recipe = recipe or RECIPES[model.kind]
    image, target, is_box = batch["image"], batch["target"], batch["is_box"]
    if model.kind == "destseg":
        if phase == "student":  # the teacher's maps of the input are not needed: 1 teacher pass, not 2
            student = _student_loss(model, model.student(image), batch, cache)
            return student, {"student": student.item()}
        teacher = model.teacher_features(image)
        if phase == "seg":
            with torch.no_grad():
                student_maps = model.student(image)
        else:
            student_maps = model.student(image)
        logits = model.segment(teacher, student_maps, image.shape[-2:])
        seg = segmentation_loss(logits, target, is_box, p_cutoff, l1_weight=recipe.l1_weight, gamma=recipe.gamma)
        if phase == "seg":
            return seg, {"seg": seg.item()}
        student = _student_loss(model, student_maps, batch, cache)
        return seg + student, {"seg": seg.item(), "student": student.item()}
    out = model(image)
    seg = segmentation_loss(out["logits"], target, is_box, p_cutoff, l1_weight=recipe.l1_weight, gamma=recipe.gamma)
    if model.kind == "draem":
        keep = batch["has_clean"]
        l2 = _masked_mean((out["recon"] - batch["clean"]).pow(2).flatten(1).mean(1), keep)
        ssim = ssim_loss(out["recon"][keep], batch["clean"][keep]) if keep.any() else l2 * 0
        return seg + l2 + ssim, {"seg": seg.item(), "l2": l2.item(), "ssim": ssim.item()}
    return seg, {"seg": seg.item()}


def schedule(recipe: Recipe, total_steps: int, cutoff_warmup_steps: int | None) -> dict[str, int | list[int]]:
    """Step numbers of a run: ``student_steps`` (DeSTSeg student-only steps first), ``warmup`` (cutoff
    ramp length, counted from the first segmentation step; None = ``AUTO_WARMUP_SHARE`` of those steps)
    and ``milestones`` (steps after which the learning rate drops x0.1)."""
    student_steps = round(recipe.student_first * total_steps) if recipe.model == "destseg" else 0
    seg_steps = total_steps - student_steps
    warmup = round(AUTO_WARMUP_SHARE * seg_steps) if cutoff_warmup_steps is None else cutoff_warmup_steps
    return {
        "student_steps": student_steps, "warmup": warmup,
        "milestones": [round(m * total_steps) for m in recipe.lr_milestones],
    }


def step_lr(lr: float, step: int, milestones: list[int]) -> float:
    """The learning rate at ``step``: ``lr`` x 0.1 per milestone reached (DRAEM's MultiStepLR, gamma 0.1)."""
    return lr * 0.1 ** sum(step >= m for m in milestones)


def make_loader(dataset, batch_size: int, seed: int) -> torch.utils.data.DataLoader:
    """The training loader: in index order (sample ``i`` is already random in its image, and its kind
    follows the recipe's mix, so each batch holds the recipe's shares), one process, seeded."""
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=0, generator=torch.Generator().manual_seed(seed),
        drop_last=len(dataset) > batch_size,  # BatchNorm needs more than one sample per batch
    )


def train_loop(
    model: torch.nn.Module,
    dataset,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    p_cutoff: float,
    cutoff_warmup_steps: int | None = None,
    recipe: Recipe | None = None,
    device: str = "cpu",
    on_step: Callable[[int, float], None] | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` in place with Adam; returns the curve: one dict of mean losses per epoch.

    ``recipe`` (default: the one named after the model) sets the focal gamma, the L1 weight, DeSTSeg's
    student-first schedule and the learning-rate milestones; ``cutoff_warmup_steps`` None = automatic (see
    ``AUTO_WARMUP_SHARE``). For identical bytes the caller builds the model and calls this inside one
    ``torch.random.fork_rng(devices=[])`` after ``torch.manual_seed(seed)``.
    ``on_step(step, loss)`` is called after every optimiser step (progress bars).
    """
    recipe = recipe or RECIPES[model.kind]
    loader = make_loader(dataset, batch_size, seed)
    plan = schedule(recipe, epochs * len(loader), cutoff_warmup_steps)
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=lr)
    model.to(device).train()
    cache: dict = {}  # DeSTSeg: the frozen teacher's maps of each clean image, computed once
    curve, step = [], 0
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        sums: dict[str, float] = {}
        batches = 0
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            phase = "joint"
            if plan["student_steps"]:
                phase = "student" if step < plan["student_steps"] else "seg"
                if phase == "seg":
                    model.student.eval()  # DeSTSeg's second step: the student is frozen
            for group in optimiser.param_groups:
                group["lr"] = step_lr(lr, step, plan["milestones"])
            cutoff = ramped_cutoff(p_cutoff, step - plan["student_steps"], plan["warmup"])
            loss, parts = model_loss(model, batch, cutoff, recipe, phase, cache)
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
