"""DualAnoDiff concept learning: one LoRA per branch, trained jointly with SAIM and BCM.

Paper: Jin et al., "DualAnoDiff: Dual-Interrelated Diffusion Model for Few-Shot Anomaly Image
Generation", CVPR 2025 (arXiv:2408.13509).

For each learn shot the whole anomalous image and its anomaly *part* (image x binarised mask, on black)
are VAE-encoded, get independent noise at the SAME timestep and run as one interleaved batch (row 2i
whole, 2i+1 part; see :mod:`anogen_data.synthesis.dual_attention`). Prompts are nested: "a vfx with sks"
(whole) and "sks" (part). Each branch has its own peft LoRA adapter ("whole", "part") on every UNet
attention projection; peft's mixed-batch forward picks the adapter per row. The text encoder gets ONE
LoRA shared by both branches, as the release trains it: that is what makes the nested prompts mean the
same thing in both ("sks" is one learned word). Loss: noise MSE of the whole branch + noise MSE of the
part branch. Only LoRA, SAIM and BCM train.

BCM's training reference of each shot is that same shot with its foreground and its defect removed
(:func:`anogen_data.diffusion.dual_reference.defect_free_background`), flipped/cropped together with it,
as the release pairs each image with its own foreground-removed copy.

Artefacts (diffusers' own formats, so a stock pipeline loads them):
``pytorch_lora_weights_whole.safetensors``, ``pytorch_lora_weights_part.safetensors`` (load with
``pipe.load_lora_weights(folder, weight_name=..., adapter_name=...)``; both files carry the same shared
text-encoder LoRA, so either loads a complete branch) and ``dual_modules/``
(``DualModules.save_pretrained``: SAIM + BCM weights as safetensors).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from anogen_data.diffusion.conditioning import BRANCHES, PART, WHOLE, branch_adapters, encode_prompts, pair_adapters
from anogen_data.synthesis.dual_attention import DualModules
from anogen_data.diffusion.dual_reference import defect_free_background, to_tensor

__all__ = [  # the conditioning helpers are re-exported: callers of this module keep their imports
    "BRANCHES", "PART", "TEXT_ADAPTER", "WHOLE", "DualTrainOptions", "add_branch_adapters", "branch_adapters",
    "encode_prompts", "fixed_loss", "learn_dual_concept", "load_dual_concept", "lora_weight_name", "pair_adapters",
    "save_dual_concept", "seeded", "shot_tensors", "to_tensor", "train_dual_lora",
]

TEXT_ADAPTER = "text"  # the ONE text-encoder LoRA, shared by both branches (the release)
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def lora_weight_name(branch: str) -> str:
    """File name of one branch's LoRA: ``pytorch_lora_weights_<branch>.safetensors``."""
    return f"pytorch_lora_weights_{branch}.safetensors"


@dataclass(frozen=True)
class DualTrainOptions:
    """Training settings; defaults are the released DualAnoDiff ones (SD-1.5, 512 px).

    Attributes:
        steps, batch_size, lr: 5,000 steps of 4 pairs at a constant 2e-5 (the release).
        rank: LoRA rank of every adapter (alpha = rank, so the LoRA scale is 1).
        train_text_encoder: also train one text-encoder LoRA shared by both branches (the release does).
        whole_prompt, part_prompt: the nested prompts.
        resolution: training side in pixels (None: the model's native side).
        gradient_checkpointing, use_8bit_adam: memory savers for 24 GB GPUs.
        seed: seeds every random draw (one CPU ``torch.Generator``).
    """

    steps: int = 5000
    batch_size: int = 4
    lr: float = 2e-5
    rank: int = 32
    train_text_encoder: bool = True
    whole_prompt: str = "a vfx with sks"
    part_prompt: str = "sks"
    resolution: int | None = None
    gradient_checkpointing: bool = False
    use_8bit_adam: bool = False
    seed: int = 0


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the body with the global torch RNG seeded to ``seed``; the caller's RNG state is restored after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def add_branch_adapters(unet, text_encoder=None, rank: int = 32) -> None:
    """Add the "whole" and "part" UNet LoRA adapters (and ONE shared text-encoder adapter); freeze
    everything else, make the adapters trainable."""
    from peft import LoraConfig
    from peft.tuners.tuners_utils import BaseTunerLayer

    unet.requires_grad_(False)
    config = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=UNET_TARGETS)
    with warnings.catch_warnings():  # peft warns on the second adapter: two adapters is the point
        warnings.filterwarnings("ignore", message="Already found a `peft_config`")
        for branch in BRANCHES:
            unet.add_adapter(config, adapter_name=branch)
    for module in unet.modules():
        if isinstance(module, BaseTunerLayer):
            module.set_adapter(list(BRANCHES))  # both active; rows pick theirs via branch_adapters
    if text_encoder is not None:
        text_encoder.requires_grad_(False)
        text_encoder.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                            target_modules=TEXT_TARGETS), adapter_name=TEXT_ADAPTER)
        text_encoder.set_adapter(TEXT_ADAPTER)
    for model in (unet, text_encoder):
        for name, param in model.named_parameters() if model is not None else ():
            param.requires_grad_("lora_" in name)


def shot_tensors(images: Sequence[np.ndarray], masks: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """Stack (whole, part, mask) per shot: (K, 7, size, size) in [-1, 1]; part = image on black where mask is 0.

    Args:
        images: uint8 (H, W, 3); masks: uint8 (H, W), 255 = defect.
    """
    whole = to_tensor(images, size)
    mask = (to_tensor([m[..., None] for m in masks], size) > 0).float()
    part = whole * mask - (1 - mask)  # black is -1 in [-1, 1]
    return torch.cat([whole, part, mask * 2 - 1], dim=1)


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The same random horizontal flip and crop (80-100 % side, resized back) on all channels of a row.

    Rows are (K, C, R, R) with channels 0:3 whole, 3:6 part, 6 mask and, when present, 7:10 the shot's
    BCM reference, so the reference stays aligned with its shot (the release seeds both alike)."""
    rows, _, size, _ = batch.shape
    out = []
    for row in batch:
        if torch.rand((), generator=generator) < 0.5:
            row = row.flip(-1)
        side = int(size * (0.8 + 0.2 * torch.rand((), generator=generator)))
        y, x = (int(torch.randint(0, size - side + 1, (), generator=generator)) for _ in range(2))
        crop = row[None, :, y : y + side, x : x + side]
        out.append(F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False)[0])
    batch = torch.stack(out)
    part_mask = (batch[:, 6:7] > 0).float()
    batch[:, 3:6] = batch[:, 3:6] * part_mask - (1 - part_mask)  # keep the part exactly black off-mask
    return batch


def encode_latents(vae, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """VAE latents (N, 4, h, w) of images in [-1, 1], sampled with ``generator``, times the scaling factor."""
    dist = vae.encode(images.to(vae.device, vae.dtype)).latent_dist
    return dist.sample(generator=generator) * vae.config.scaling_factor


def interleave(whole: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    """(B, ...) and (B, ...) -> (2B, ...) with rows whole_0, part_0, whole_1, part_1, ..."""
    return torch.stack([whole, part], dim=1).flatten(0, 1)


def trainable_parameters(unet, text_encoder, dual: DualModules) -> list[torch.nn.Parameter]:
    """LoRA parameters of the UNet (and text encoder) plus every SAIM and BCM parameter."""
    params = [p for p in unet.parameters() if p.requires_grad]
    if text_encoder is not None:
        params += [p for p in text_encoder.parameters() if p.requires_grad]
    return params + list(dual.parameters())


def make_optimizer(params, lr: float, use_8bit_adam: bool) -> torch.optim.Optimizer:
    """AdamW, or bitsandbytes' 8-bit AdamW when asked and installed (falls back to AdamW otherwise)."""
    if use_8bit_adam:
        try:
            import bitsandbytes as bnb

            return bnb.optim.AdamW8bit(params, lr=lr)
        except ImportError:
            pass
    return torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)


def train_dual_lora(
    components,
    dual: DualModules,
    shots: torch.Tensor,
    backgrounds: torch.Tensor,
    options: DualTrainOptions,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train both branch LoRAs, SAIM and BCM on the learn shots; returns the loss of every step.

    Args:
        components: ``anogen_data.diffusion.loading.Components`` (unet, vae, text_encoder, tokenizer,
            scheduler, device, dtype); adapters are added here unless the UNet already has them.
        dual: SAIM/BCM modules for ``components.unet`` (moved to its device, trained in fp32).
        shots: (K, 7, R, R) from :func:`shot_tensors` (whole, part, mask channels in [-1, 1]).
        backgrounds: (K, 3, R, R) in [-1, 1], BCM's reference of each shot (row k for shot k: the shot
            without foreground and defect, :func:`dual_reference.defect_free_background`).
        options: steps, batch, lr, prompts, memory savers, seed.
        on_step: called with (step, loss) after every step (progress bars).
    """
    unet, vae, scheduler = components.unet, components.vae, components.scheduler
    text_encoder = components.text_encoder if options.train_text_encoder else None
    if WHOLE not in getattr(unet, "peft_config", {}):
        with seeded(options.seed):  # LoRA A is drawn from the global RNG: seed it, leave it as it was
            add_branch_adapters(unet, text_encoder, options.rank)
    if options.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    dual.place(components.device, torch.float32).train()
    params = trainable_parameters(unet, text_encoder, dual)
    for param in params:  # LoRA/SAIM/BCM train in fp32 even when the frozen model is half precision
        param.data = param.data.float()
    optimizer = make_optimizer(params, options.lr, options.use_8bit_adam)
    gen = torch.Generator().manual_seed(options.seed)
    losses: list[float] = []
    with dual.attached(unet) as state:
        for step in range(options.steps):
            loss = _train_step(components, text_encoder, state, shots, backgrounds, options, gen, backward=True)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            if on_step is not None:
                on_step(step, losses[-1])
    dual.eval()
    return losses


@torch.no_grad()
def fixed_loss(components, dual: DualModules, shots, backgrounds, options: DualTrainOptions, seed: int = 1234) -> float:
    """The training loss on one batch drawn with ``seed`` (same draw every call): before/after comparisons."""
    text_encoder = components.text_encoder if options.train_text_encoder else None
    with dual.attached(components.unet) as state:
        gen = torch.Generator().manual_seed(seed)
        return float(_train_step(components, text_encoder, state, shots, backgrounds, options, gen))


def _train_step(components, text_encoder, state, shots, backgrounds, options, gen, backward: bool = False) -> torch.Tensor:
    """One joint step: both branches at the same timestep, BCM write pass, read pass, summed MSE.

    With ``backward`` the loss is back-propagated inside the per-row adapter hooks, so gradient
    checkpointing recomputes the same mixed-batch forward.
    """
    unet, vae, scheduler, device = components.unet, components.vae, components.scheduler, components.device
    pairs = options.batch_size
    if len(backgrounds) != len(shots):
        raise ValueError(f"need one BCM reference per shot, got {len(backgrounds)} for {len(shots)} shots")
    picks = torch.randint(len(shots), (pairs,), generator=gen)
    batch = augment(torch.cat([shots[picks], backgrounds[picks]], dim=1), gen)  # same flip/crop for both
    refs = batch[:, 7:10]
    with torch.no_grad():
        latents = encode_latents(vae, interleave(batch[:, :3], batch[:, 3:6]), gen).float()
        ref_latents = encode_latents(vae, refs, gen).float()
    noise = torch.randn(latents.shape, generator=gen).to(device)
    ref_noise = torch.randn(ref_latents.shape, generator=gen).to(device)
    t_pairs = torch.randint(0, scheduler.config.num_train_timesteps, (pairs,), generator=gen).to(device)
    timesteps = t_pairs.repeat_interleave(2)  # both branches of a pair share the timestep
    noisy = scheduler.add_noise(latents, noise, timesteps).to(unet.dtype)
    with torch.set_grad_enabled(torch.is_grad_enabled() and text_encoder is not None):  # ONE shared text LoRA
        embeds = encode_prompts(components.text_encoder, components.tokenizer, [options.whole_prompt, options.part_prompt])
    embeds = embeds.repeat(pairs, 1, 1)  # (2B, 77, D), rows (whole, part) per pair
    with torch.no_grad(), branch_adapters(unet, [WHOLE] * pairs):
        state.bcm = "write"
        ref_noisy = scheduler.add_noise(ref_latents, ref_noise, t_pairs).to(unet.dtype)
        unet(ref_noisy, t_pairs, embeds[0::2].detach())
    state.bcm = "read"
    if scheduler.config.prediction_type == "v_prediction":
        target = scheduler.get_velocity(latents, noise, timesteps)
    else:
        target = noise
    with branch_adapters(unet, pair_adapters(pairs)):
        pred = unet(noisy, timesteps, embeds).sample.float()
        loss = F.mse_loss(pred[0::2], target[0::2]) + F.mse_loss(pred[1::2], target[1::2])
        if backward:
            loss.backward()
    return loss


def _text_adapter(text_encoder) -> str | None:
    """The shared text-encoder adapter's name, or None when the text encoder has no LoRA."""
    if text_encoder is None or not getattr(text_encoder, "_hf_peft_config_loaded", False):
        return None
    return TEXT_ADAPTER if TEXT_ADAPTER in text_encoder.peft_config else next(iter(text_encoder.peft_config))


def save_dual_concept(folder: Path, unet, text_encoder, dual: DualModules) -> list[str]:
    """Write both branch LoRAs (diffusers format) and ``dual_modules/``; returns the file names written."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    folder = Path(folder)
    names = []
    te_adapter = _text_adapter(text_encoder)
    # Text-encoder keys stay in peft format: diffusers' loader reads them as is (its converted
    # "lora_linear_layer" names are not mapped back by transformers 5 and load as missing). The ONE
    # shared text LoRA goes into both branch files, so each loads as a complete stock LoRA.
    te_layers = get_peft_model_state_dict(text_encoder, adapter_name=te_adapter) if te_adapter else None
    te_meta = text_encoder.peft_config[te_adapter].to_dict() if te_adapter else None
    for branch in BRANCHES:
        unet_layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet, adapter_name=branch))
        StableDiffusionPipeline.save_lora_weights(
            folder, unet_lora_layers=unet_layers, text_encoder_lora_layers=te_layers,
            weight_name=lora_weight_name(branch), unet_lora_adapter_metadata=unet.peft_config[branch].to_dict(),
            text_encoder_lora_adapter_metadata=te_meta,
        )
        names.append(lora_weight_name(branch))
    dual.save_pretrained(folder / "dual_modules")
    return names + ["dual_modules"]


def learn_dual_concept(components, images, masks, options: DualTrainOptions, folder: Path, on_step=None) -> dict:
    """Train and save one defect type's concept into ``folder``; returns the facts for concept.json.

    BCM's reference of each learn shot is that shot with its foreground (our estimate) and its defect
    inpainted away, so the module learns to keep the real background and never sees a defect in it.
    The adapters are removed from the shared model afterwards, so the next defect type starts fresh.

    Args:
        images: uint8 (H, W, 3) learn shots; masks: uint8 (H, W), 255 = defect.
    """
    from anogen_data.layout.foreground import estimate_foreground

    size = options.resolution or components.resolution
    shots = shot_tensors(images, masks, size)
    references = [defect_free_background(im, m, fg) for im, m, fg in zip(images, masks, estimate_foreground(images), strict=True)]
    backgrounds = to_tensor(references, size)
    text_encoder = components.text_encoder if options.train_text_encoder else None
    with seeded(options.seed):  # LoRA A and SAIM q/k/v come from the global RNG: same seed, same concept
        add_branch_adapters(components.unet, text_encoder, options.rank)
        dual = DualModules.for_unet(components.unet)
    try:
        losses = train_dual_lora(components, dual, shots, backgrounds, options, on_step)
        files = save_dual_concept(folder, components.unet, text_encoder, dual)
    finally:
        components.unet.delete_adapters(list(BRANCHES))
        if text_encoder is not None:
            text_encoder.delete_adapter(TEXT_ADAPTER)
    return {
        "weights": files, "adapters": list(BRANCHES), "whole_prompt": options.whole_prompt,
        "part_prompt": options.part_prompt, "rank": options.rank, "steps": options.steps,
        "batch_size": options.batch_size, "lr": options.lr, "resolution": size,
        "train_text_encoder": options.train_text_encoder, "loss_curve": [round(x, 6) for x in losses],
    }


def load_dual_concept(pipe, folder: Path, prefix: str = "") -> tuple[str, str, DualModules]:
    """Load a concept folder into ``pipe`` (any pipeline with ``load_lora_weights``).

    Returns:
        (whole adapter name, part adapter name, DualModules); adapter names are ``prefix + branch``.
    """
    from transformers.utils import logging as hf_logging

    folder = Path(folder)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its load report lists the OTHER adapters' keys as "missing"
    try:
        for branch in BRANCHES:
            pipe.load_lora_weights(folder, weight_name=lora_weight_name(branch), adapter_name=prefix + branch)
    finally:
        hf_logging.set_verbosity(verbosity)
    dual = DualModules.from_pretrained(folder / "dual_modules")
    return prefix + WHOLE, prefix + PART, dual
