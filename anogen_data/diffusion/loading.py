"""Load a text-to-image latent diffusion model (Stable Diffusion 1.5 layout) for AnoGen and DualAnoDiff.

``--model`` is a Hugging Face hub id (``stable-diffusion-v1-5/stable-diffusion-v1-5``), a local
diffusers folder (``unet/ vae/ text_encoder/ tokenizer/ scheduler/``), or ``tiny`` (random tiny
components from :mod:`anogen_data.diffusion.tiny`, nothing downloaded). Offline use: pass a folder, or
set ``HF_HUB_OFFLINE=1`` / ``local_files_only=True``; a missing piece is reported on one line.

Device ``auto|cpu|cuda[:N]``; dtype ``auto|fp32|fp16|bf16`` (auto = bf16 on CUDA when supported, else
fp16; fp32 on CPU). Paper context: AnoGen (Gui et al., ECCV 2024, https://arxiv.org/abs/2505.09263)
used the CompVis LDM; we default to SD-1.5 with the same algorithm.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anogen_data.errors import AnogenError

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SUBFOLDERS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
DTYPE_ALIASES = {"float32": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16"}


@dataclass
class Components:
    """The pieces of a text-to-image latent diffusion model, placed on ``device`` in ``dtype``.

    Attributes:
        unet: UNet2DConditionModel (latents (B, 4, h, w) -> noise prediction, same shape).
        vae: AutoencoderKL (images (B, 3, H, W) in [-1, 1] <-> latents, H = h * vae_scale_factor).
        text_encoder: CLIPTextModel (ids (B, 77) -> hidden states (B, 77, width)).
        tokenizer: CLIPTokenizer.
        scheduler: the model's noise scheduler (DDIM-compatible config).
        model_id: what ``--model`` said ("tiny", a hub id or a folder path).
        device, dtype: torch.device and torch.dtype the modules live on.
    """

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any
    model_id: str
    device: Any
    dtype: Any

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent cell (8 for SD-1.5, 2 for tiny)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def resolution(self) -> int:
        """The model's native image side in pixels (512 for SD-1.5, 64 for tiny)."""
        return int(self.unet.config.sample_size) * self.vae_scale_factor

    @property
    def embedding_width(self) -> int:
        """Width of the text encoder's token embeddings (768 for SD-1.5, 32 for tiny)."""
        return int(self.text_encoder.get_input_embeddings().weight.shape[1])


def resolve_device(device: str | None = "auto"):
    """``auto|cpu|cuda|cuda:N`` -> torch.device.

    Raises:
        AnogenError: CUDA asked for but not available, or an unknown device name.
    """
    import torch

    name = (device or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise AnogenError(f"--device {device}: CUDA is not available on this machine; use --device cpu or auto")
        try:
            resolved = torch.device(name)
        except RuntimeError as exc:
            raise AnogenError(f"--device {device} is not a valid CUDA device name (e.g. cuda or cuda:1)") from exc
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise AnogenError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) present")
        return resolved
    raise AnogenError(f"--device {device} is not one of auto, cpu, cuda, cuda:N")


def resolve_dtype(dtype: str | None, device) -> Any:
    """``auto|fp32|fp16|bf16`` -> torch.dtype for ``device`` (auto: half precision on CUDA, fp32 on CPU).

    Raises:
        AnogenError: unknown name, or fp16 on CPU (unsupported by many CPU kernels; use fp32 or bf16).
    """
    import torch

    name = (dtype or "auto").lower()
    name = DTYPE_ALIASES.get(name, name)
    if name == "auto":
        if getattr(device, "type", str(device)) == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if name not in DTYPES:
        raise AnogenError(f"--dtype {dtype} is not one of auto, fp32, fp16, bf16")
    if name == "fp16" and getattr(device, "type", str(device)) == "cpu":
        raise AnogenError("--dtype fp16 is not supported on CPU; use --dtype fp32 or bf16 (or a CUDA device)")
    return getattr(torch, DTYPES[name])


def _looks_like_path(model: str) -> bool:
    """A folder when it exists, starts with . / ~, or has more than one '/' (hub ids are ORG/NAME)."""
    return Path(model).expanduser().exists() or model.startswith((".", "/", "~")) or model.count("/") > 1


def _check_folder(folder: Path) -> None:
    """Raise one line naming every missing subfolder/config of a diffusers text-to-image folder."""
    if not folder.is_dir():
        raise AnogenError(f"model folder {folder} does not exist; pass a diffusers folder, a hub id, or 'tiny'")
    missing = [f"{name}/" for name in SUBFOLDERS if not (folder / name).is_dir()]
    for name in ("unet", "vae", "text_encoder"):
        if (folder / name).is_dir() and not (folder / name / "config.json").is_file():
            missing.append(f"{name}/config.json")
    if missing:
        raise AnogenError(
            f"model folder {folder} is not a diffusers text-to-image model: missing {', '.join(missing)} "
            "(save one with StableDiffusionPipeline.save_pretrained)"
        )


def _load_pretrained(model: str, local_files_only: bool, torch_dtype) -> dict[str, Any]:
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    loaders = dict(
        unet=UNet2DConditionModel, vae=AutoencoderKL, text_encoder=CLIPTextModel,
        tokenizer=CLIPTokenizer, scheduler=DDIMScheduler,
    )
    parts: dict[str, Any] = {}
    for name, cls in loaders.items():
        try:
            kwargs = {"torch_dtype": torch_dtype} if name in ("unet", "vae", "text_encoder") else {}
            parts[name] = cls.from_pretrained(model, subfolder=name, local_files_only=local_files_only, **kwargs)
        except (OSError, ValueError) as exc:
            where = "the local cache (offline)" if local_files_only else "the hub or the local cache"
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise AnogenError(
                f"model '{model}': cannot load its {name}/ from {where} ({first_line}); download it once "
                "with `hf download` or pass a local diffusers folder to --model"
            ) from exc
    return parts


def load_components(
    model: str,
    *,
    device: str | None = "auto",
    dtype: str | None = "auto",
    local_files_only: bool | None = None,
    seed: int = 0,
) -> Components:
    """Load ``model`` ("tiny", a hub id or a local diffusers folder) onto ``device`` in ``dtype``.

    Modules are frozen (requires_grad False) and in eval mode; callers that train unfreeze what they
    train. ``local_files_only`` defaults to ``HF_HUB_OFFLINE``. ``seed`` only seeds the tiny weights.

    Raises:
        AnogenError: missing folder or subfolder, not cached offline, bad device/dtype.
    """
    import torch

    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    if model == "tiny":
        from anogen_data.diffusion.tiny import build_tiny_components

        parts = build_tiny_components(seed)
    else:
        if local_files_only is None:
            local_files_only = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")
        if _looks_like_path(model):
            folder = Path(model).expanduser()
            _check_folder(folder)
            model, local_files_only = str(folder), True
        parts = _load_pretrained(model, bool(local_files_only), torch_dtype)
    for name in ("unet", "vae", "text_encoder"):
        module = parts[name]
        module.requires_grad_(False)
        module.eval()
        if module.dtype != torch_dtype:
            module.to(dtype=torch_dtype)
        module.to(device=torch_device)
    return Components(**parts, model_id=str(model), device=torch_device, dtype=torch_dtype)


def text_encoder_fingerprint(text_encoder) -> str:
    """sha256 (hex, 16 chars) of the text encoder's architecture config: tells base models apart."""
    config = text_encoder.config.to_dict()
    keys = ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers",
            "vocab_size", "max_position_embeddings", "hidden_act", "projection_dim")
    stable = {k: config.get(k) for k in keys}
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:16]
