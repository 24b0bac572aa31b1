"""Masked textual inversion: learn one new token per defect type (AnoGen stage 1).

AnoGen (Gui et al., "Few-Shot Anomaly-Driven Generation for Anomaly Classification and Segmentation",
ECCV 2024, https://arxiv.org/abs/2505.09263) inverts each defect type into one token embedding of a
frozen text-to-image latent diffusion model (textual inversion, Gal et al., ICLR 2023), from k=3 real
anomalies. The noise-prediction MSE is multiplied by the real defect mask, downsampled to the latent
size and binarised, so only the defect region shapes the embedding.

The new token's vector is a separate ``nn.Parameter`` injected by a forward hook on the text encoder's
input embedding table: the table itself is frozen, so no other row can drift. The result is saved in
diffusers' format (``{token: (1, width) fp32}`` in ``learned_embeds.safetensors``) so a stock
pipeline's ``load_textual_inversion`` loads it.

Differences from the released code (gaobb/AnoGen ``DIFFUSION/``, a fork of rinongal/textual_inversion),
each chosen to match what the release does with SD-1.5:
- **Augmentation = the release's**: the whole image resized to the model's square side plus a random
  horizontal flip (``ldm/data/personalized.py``). No random crops: crops of any aspect ratio resized to
  a square stretched the defects (width/height ratio 0.2-4.2 on a square defect), so the token learnt
  distorted shapes. Non-square images are first cut to the square of side min(H, W) that holds the
  defect box (the release stretches them; MVTec images are square, so this only matters elsewhere).
- **Precision**: the release trains in fp32. The text encoder, the trainable vector and everything
  between them run in fp32 here even when the frozen UNet/VAE are bf16/fp16 (the text encoder is cast
  up for training and back afterwards); only the UNet runs in half precision.
- **Learning rate**: the release's Stable Diffusion config (``configs/stable-diffusion/v1-finetune.yaml``:
  base lr 5e-3, batch 2, scaled by batch = 0.01) is our default because we default to SD-1.5; the
  0.02 of its LDM config (batch 4) belongs to the 256 px LDM the paper used.

Conventions: images uint8 (H, W, 3) RGB; masks uint8 (H, W) {0, 255}, 255 = defect; pixels fed to the
VAE are float in [-1, 1]; latents (B, 4, H / f, W / f) with f the VAE scale factor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from anogen_data.errors import AnogenError

# Caption templates of the textual-inversion paper's released code ("imagenet_templates_small").
TEMPLATES = (
    "a photo of a {}",
    "a rendering of a {}",
    "a cropped photo of the {}",
    "the photo of a {}",
    "a photo of a clean {}",
    "a photo of a dirty {}",
    "a dark photo of the {}",
    "a photo of my {}",
    "a bright photo of the {}",
    "a cropped photo of a {}",
    "a close-up photo of a {}",
    "a good photo of the {}",
    "a photo of one {}",
    "a close-up photo of the {}",
    "a rendition of the {}",
    "a photo of the clean {}",
    "a photo of a small {}",
    "a photo of a large {}",
)


@dataclass(frozen=True)
class Shot:
    """One real anomaly: image uint8 (H, W, 3), mask uint8 (H, W) {0, 255}, and the image's sha256."""

    image: np.ndarray
    mask: np.ndarray
    sha256: str = ""


@dataclass
class LearnedConcept:
    """Result of :func:`learn_token`: the token, its vector (width,) fp32 and the loss per step."""

    token: str
    token_id: int
    vector: torch.Tensor
    losses: list[float] = field(default_factory=list)


class TokenInjector(torch.nn.Module):
    """Holds the trainable vector of one new token and writes it into the embedding lookup output.

    A forward hook on ``text_encoder.get_input_embeddings()`` replaces the rows of ``token_id`` in the
    (B, 77, width) output with ``vector`` (width,), so gradients reach only ``vector``.
    """

    def __init__(self, text_encoder, token_id: int, init: torch.Tensor) -> None:
        super().__init__()
        self.token_id = token_id
        self.vector = torch.nn.Parameter(init.detach().clone().float())
        self._handle = text_encoder.get_input_embeddings().register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        ids = inputs[0]
        hit = (ids == self.token_id).unsqueeze(-1)
        return torch.where(hit, self.vector.to(output.dtype), output)

    def remove(self) -> None:
        """Detach the hook (the vector stays readable)."""
        self._handle.remove()


def add_token(tokenizer, text_encoder, token: str) -> int:
    """Add ``token`` to the tokenizer and one row to the text encoder's embedding table; returns its id.

    Raises:
        AnogenError: ``token`` already exists in the tokenizer.
    """
    if tokenizer.add_tokens([token]) != 1:
        raise AnogenError(f"token '{token}' already exists in the tokenizer; choose another placeholder token")
    token_id = int(tokenizer.convert_tokens_to_ids(token))
    rows = text_encoder.get_input_embeddings().weight.shape[0]
    if token_id >= rows:  # tables may be larger than the vocabulary (padding rows); never shrink them
        text_encoder.resize_token_embeddings(token_id + 1)
    return token_id


def init_embedding(tokenizer, text_encoder, init_word: str) -> torch.Tensor:
    """The embedding (width,) fp32 of ``init_word``.

    Raises:
        AnogenError: ``init_word`` is not exactly one token for this tokenizer.
    """
    init_ids = tokenizer.encode(init_word, add_special_tokens=False)
    if len(init_ids) != 1:
        raise AnogenError(f"init word '{init_word}' is {len(init_ids)} tokens for this tokenizer; choose a one-token word")
    return text_encoder.get_input_embeddings().weight[init_ids[0]].detach().float().clone()


def set_embedding(text_encoder, token_id: int, vector: torch.Tensor) -> None:
    """Write ``vector`` (width,) into row ``token_id`` of the embedding table (no gradient)."""
    table = text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        table[token_id] = vector.to(table.device, table.dtype)


def latent_mask(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Defect masks (B, H, W) in {0, 255} -> binary (B, 1, h, w) float: a latent cell is 1 if any of its
    pixels is defect (so thin scratches survive the 8x downsampling)."""
    area = F.interpolate(masks[:, None].float() / 255.0, size=size, mode="area")
    return (area > 0).float()


def masked_noise_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """AnoGen's loss: mean over all elements of (pred - target)^2 * mask (B, 1, h, w) {0, 1}.

    The mean is over the whole latent (as the released code does), so the paper's learning rate keeps
    its meaning; an empty mask gives a zero loss and a zero gradient.
    """
    return ((pred.float() - target.float()) ** 2 * mask).mean()


def square_window(height: int, width: int, box: Sequence[float]) -> tuple[int, int, int, int]:
    """The (x0, y0, x1, y1) square of side min(H, W) that holds ``box`` (centred on it along the long side);
    the whole image when it is square."""
    side = min(height, width)
    bx0, by0, bx1, by1 = box
    x0 = min(max(0, round((bx0 + bx1 - side) / 2)), width - side)
    y0 = min(max(0, round((by0 + by1 - side) / 2)), height - side)
    return x0, y0, x0 + side, y0 + side


def make_augment(resolution: int, seed: int) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The release's augmentation: ``(image, mask) -> (image, mask)`` resized to ``resolution`` square
    (image bicubic, as the release; mask by area, any defect pixel kept) and flipped left-right with
    probability 0.5 (drawn from ``seed``). Defects keep their aspect ratio (no crops, no vertical flips)."""
    import cv2

    rng = np.random.default_rng(seed)

    def augment(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x0, y0, x1, y1 = square_window(*mask.shape, defect_box(mask))
        image, mask = image[y0:y1, x0:x1], mask[y0:y1, x0:x1]
        if image.shape[0] != resolution:
            image = cv2.resize(image, (resolution, resolution), interpolation=cv2.INTER_CUBIC)
            mask = np.where(cv2.resize(mask, (resolution, resolution), interpolation=cv2.INTER_AREA) > 0, 255, 0)
        if rng.random() < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        return np.ascontiguousarray(image), np.ascontiguousarray(mask, dtype=np.uint8)

    return augment


def defect_box(mask: np.ndarray) -> list[float]:
    """The (x0, y0, x1, y1) box of a mask's defect pixels, or the whole image when the mask is empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return [0.0, 0.0, float(mask.shape[1]), float(mask.shape[0])]
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def _batch(shots: Sequence[Shot], picks: np.ndarray, augment) -> tuple[torch.Tensor, torch.Tensor]:
    """Augmented pixels (B, 3, R, R) in [-1, 1] and masks (B, R, R) {0, 255} for the picked shots."""
    images, masks = [], []
    for i in picks:
        shot = shots[int(i)]
        image, mask = augment(shot.image, shot.mask)
        images.append(torch.from_numpy(image))
        masks.append(torch.from_numpy(mask))
    pixels = torch.stack(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return pixels, torch.stack(masks)


def masked_step_loss(components, noise_scheduler, pixels: torch.Tensor, masks: torch.Tensor,
                     captions: Sequence[str], generator: torch.Generator) -> torch.Tensor:
    """One textual-inversion step's loss: noise the shots' latents, predict the noise, mask the MSE.

    Args:
        pixels: (B, 3, R, R) in [-1, 1]; masks: (B, R, R) {0, 255}; captions: B prompts with the token.
        generator: CPU generator for the VAE sample, the noise and the timesteps.

    Returns:
        Scalar loss; gradients flow only into a ``TokenInjector`` hooked on the text encoder.
    """
    c = components
    ids = c.tokenizer(list(captions), padding="max_length", max_length=c.tokenizer.model_max_length,
                      truncation=True, return_tensors="pt").input_ids.to(c.device)
    with torch.no_grad():
        dist = c.vae.encode(pixels.to(c.device, c.dtype)).latent_dist
        eps = torch.randn(dist.mean.shape, generator=generator).to(c.device, c.dtype)
        latents = (dist.mean + dist.std * eps) * c.vae.config.scaling_factor
    noise = torch.randn(latents.shape, generator=generator).to(c.device, c.dtype)
    t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(latents),), generator=generator).to(c.device)
    noisy = noise_scheduler.add_noise(latents, noise, t)
    hidden = c.text_encoder(ids)[0].to(c.dtype)  # fp32 text path (learn_token), half-precision UNet
    pred = c.unet(noisy, t, hidden).sample
    if noise_scheduler.config.prediction_type == "epsilon":
        target = noise
    else:
        target = noise_scheduler.get_velocity(latents, noise, t)
    return masked_noise_loss(pred, target, latent_mask(masks, tuple(latents.shape[-2:])).to(c.device))


def learn_token(
    components,
    shots: Sequence[Shot],
    *,
    token: str,
    init_word: str = "defect",
    steps: int = 6100,
    batch_size: int = 2,
    lr: float = 0.01,
    templates: Sequence[str] = TEMPLATES,
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> LearnedConcept:
    """Masked textual inversion of ``token`` from ``shots`` on a frozen model (AnoGen stage 1).

    Args:
        components: :class:`anogen_data.diffusion.loading.Components` (frozen; the tokenizer and the
            embedding table gain one token).
        shots: the real anomalies of one defect type (images any size; augmented to the model resolution).
        batch_size, lr: the release's SD-1.5 setting, batch 2 at 5e-3 x 2 = 0.01 (the learning rate actually
            used; callers scale the base lr by batch size).
        on_step: called with (step, loss) after each step (progress bars).

    Returns:
        The learned vector (width,) fp32 on CPU and the loss of every step.
    """
    if not shots:
        raise AnogenError(f"no learn shots for token '{token}'; the index needs role 'learn' anomalies with masks")
    from diffusers import DDPMScheduler

    c = components
    text_dtype = c.text_encoder.dtype
    c.text_encoder.to(dtype=torch.float32)  # the release trains in fp32: vector and text path stay fp32
    init = init_embedding(c.tokenizer, c.text_encoder, init_word)
    token_id = add_token(c.tokenizer, c.text_encoder, token)
    set_embedding(c.text_encoder, token_id, init)
    injector = TokenInjector(c.text_encoder, token_id, init.to(c.device))
    optimizer = torch.optim.AdamW([injector.vector], lr=lr, weight_decay=0.0)
    noise_scheduler = DDPMScheduler.from_config(c.scheduler.config)
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    augment = make_augment(c.resolution, seed)
    losses: list[float] = []
    try:
        for step in range(steps):
            pixels, masks = _batch(shots, rng.integers(0, len(shots), size=batch_size), augment)
            captions = [templates[int(j)].format(token) for j in rng.integers(0, len(templates), size=batch_size)]
            loss = masked_step_loss(c, noise_scheduler, pixels, masks, captions, gen)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            if on_step is not None:
                on_step(step, losses[-1])
    finally:
        injector.remove()
        c.text_encoder.to(dtype=text_dtype)
    vector = injector.vector.detach().float().cpu()
    set_embedding(c.text_encoder, token_id, vector)  # the new row now holds the learned vector
    return LearnedConcept(token=token, token_id=token_id, vector=vector, losses=losses)


def save_embedding(path: Path, token: str, vector: torch.Tensor) -> None:
    """Write ``learned_embeds.safetensors`` in diffusers' format: {token: (1, width) fp32}."""
    from safetensors.torch import save_file

    save_file({token: vector.detach().float().reshape(1, -1).contiguous().cpu()}, str(path))


def load_embedding(path: Path) -> tuple[str, torch.Tensor]:
    """Read a one-token ``learned_embeds.safetensors``: (token, vector (width,) fp32).

    Raises:
        AnogenError: missing file, or not exactly one (1, width) tensor.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise AnogenError(f"{path} does not exist; run `anogen-data concepts learn --method anogen` first")
    tensors = load_file(str(path))
    values = list(tensors.values())
    if len(values) != 1 or values[0].dim() not in (1, 2) or (values[0].dim() == 2 and values[0].shape[0] != 1):
        raise AnogenError(f"{path} must hold exactly one token with one vector (diffusers textual-inversion format)")
    token, value = next(iter(tensors.items()))
    return token, value.reshape(-1).float()


def install_embedding(components, token: str, vector: torch.Tensor, source: str = "") -> int:
    """Add a learned ``token`` with ``vector`` to the tokenizer and text encoder; returns its id.

    Raises:
        AnogenError: the vector's width differs from the text encoder's (concept learned on another
            base model).
    """
    width = components.embedding_width
    if vector.numel() != width:
        raise AnogenError(
            f"{source or token}: embedding width {vector.numel()} does not match the model's text encoder "
            f"width {width}; the concept was learned on another base model, relearn it with this --model"
        )
    token_id = add_token(components.tokenizer, components.text_encoder, token)
    set_embedding(components.text_encoder, token_id, vector)
    return token_id
