"""DualAnoDiff generation: a two-branch pipeline in diffusers conventions and the ``dualanodiff`` backend.

Paper: Jin et al., "DualAnoDiff: Dual-Interrelated Diffusion Model for Few-Shot Anomaly Image
Generation", CVPR 2025 (arXiv:2408.13509).

``DualAnoDiffPipeline.__call__`` runs in the fixed diffusers order: check inputs, encode prompts
(:func:`anogen_data.diffusion.conditioning.encode_prompts`), timesteps, latents (one ``torch.Generator``
per pair), denoise, decode. Every step denoises the whole-image and part-image latents of each pair
jointly (rows interleaved, SAIM across the pair); with BCM on, the references are noised to the step
and run through a "write" pass first: each conditional pair reads its background-only image, each
unconditional (guidance) pair the encoding of a zero image, as the release does, so guidance pushes
towards the real background. It returns the whole images, the part images and the masks derived from
them (:mod:`anogen_data.synthesis.dual_mask`).

Release settings (BCM sampling script ``inference_test_tempt.py``): SD-1.5's PNDM scheduler, 50 steps,
guidance 2.0 (1.2 for screw), prompts "a vfx with sks" / "sks"; these are the defaults of
``generate.options.dualanodiff``. The release changes the BCM reference every 50 samples; ours is each
layout's own good image. The release feeds the reference latents without SD's latent scaling factor;
we scale them like every other latent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.loaders import StableDiffusionLoraLoaderMixin
from diffusers.utils import BaseOutput

from anogen_data.concepts.dual_lora import load_dual_concept
from anogen_data.diffusion.conditioning import PART, WHOLE, branch_adapters, encode_prompts, pair_adapters
from anogen_data.errors import AnogenError
from anogen_data.records import Layout
from anogen_data.synthesis.base import RECIPE_EXTRA, Backend
from anogen_data.synthesis.dual_attention import DualModules, average_map, capture_cross_attention
from anogen_data.synthesis.dual_mask import fuse_attention, mask_agreement, part_mask
from anogen_data.diffusion.dual_reference import background_only, to_tensor, zero_image

SCHEDULERS = {"pndm": "PNDMScheduler", "ddim": "DDIMScheduler"}  # option name -> diffusers class
DEFAULT_STEPS, DEFAULT_GUIDANCE, DEFAULT_SCHEDULER = 50, 2.0, "pndm"  # the release's BCM sampling settings


def make_scheduler(name: str, config):
    """A fresh diffusers scheduler ``name`` ("pndm" | "ddim") on ``config`` (SD-1.5's betas).

    PNDM skips its Runge-Kutta warm-up steps, as SD-1.5's own scheduler config says.

    Raises:
        AnogenError: unknown name.
    """
    import diffusers

    if name not in SCHEDULERS:
        raise AnogenError(f"unknown dualanodiff scheduler '{name}'; valid: {', '.join(SCHEDULERS)}")
    extra = {"skip_prk_steps": True} if name == "pndm" else {}
    return getattr(diffusers, SCHEDULERS[name]).from_config(config, **extra)


@dataclass
class DualAnoDiffOutput(BaseOutput):
    """Per pair: ``images`` whole images and ``parts`` part images, uint8 (B, H, W, 3); ``masks`` uint8
    (B, H, W) {0, 255}, 255 = defect; ``agreement`` IoU of each mask with the whole image's change map
    against its BCM reference. Only meaningful when the reference still shows the object (texture
    categories): for objects the reference has the object removed, so the change map is the whole object
    (the ``quality`` stage leaves DualAnoDiff records out of its agreement statistics for that reason)."""

    images: np.ndarray
    parts: np.ndarray
    masks: np.ndarray
    agreement: list[float]


class DualAnoDiffPipeline(DiffusionPipeline, StableDiffusionLoraLoaderMixin):
    """Joint whole/part denoising with per-branch UNet LoRA adapters (one shared text LoRA), SAIM and BCM.

    Components are Stable Diffusion's (``vae``, ``text_encoder``, ``tokenizer``, ``unet``,
    ``scheduler``) plus ``dual`` (:class:`DualModules`). Load branch LoRAs with ``load_lora_weights``.
    """

    model_cpu_offload_seq = "text_encoder->unet->vae"

    def __init__(self, vae, text_encoder, tokenizer, unet, scheduler, dual: DualModules) -> None:
        super().__init__()
        self.register_modules(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                              scheduler=scheduler, dual=dual)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)

    @torch.no_grad()
    def __call__(
        self,
        backgrounds: Sequence[np.ndarray],
        generator: Sequence[torch.Generator],
        whole_prompt: str = "a vfx with sks",
        part_prompt: str = "sks",
        num_inference_steps: int = DEFAULT_STEPS,
        guidance_scale: float = DEFAULT_GUIDANCE,
        adapters: tuple[str, str] = (WHOLE, PART),
        saim: bool = True,
        bcm: bool = True,
        resolution: int | None = None,
        attention_fusion: float = 0.0,
    ) -> DualAnoDiffOutput:
        """Generate one (whole, part, mask) triple per generator.

        Args:
            backgrounds: one background-only image per pair, uint8 (H, W, 3), any size (resized to
                ``resolution``); BCM's reference and the mask's change-map baseline.
            generator: one ``torch.Generator`` per pair (same generator, same pair).
            adapters: LoRA adapter names of the whole and part branches.
            saim, bcm: switch the modules (both on is DualAnoDiff).
            resolution: square side in pixels (default: the UNet's native side).
            attention_fusion: weight w of the part rows' "sks" cross-attention map in the mask
                (:func:`dual_mask.fuse_attention`); 0 (default) skips recording it.
        """
        pairs = len(generator)
        if pairs == 0 or len(backgrounds) != pairs:
            raise ValueError(f"need one background per generator, got {len(backgrounds)} and {pairs}")
        size = resolution or self.unet.config.sample_size * self.vae_scale_factor
        device, dtype = self._execution_device, self.unet.dtype
        cfg = guidance_scale > 1.0
        embeds = self._prompt_embeds(whole_prompt, part_prompt, adapters, pairs, cfg)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        latent_shape = (2, self.unet.config.in_channels, size // self.vae_scale_factor, size // self.vae_scale_factor)
        latents = torch.cat([torch.randn(latent_shape, generator=g) for g in generator]).to(device, dtype)
        latents = latents * self.scheduler.init_noise_sigma
        ref_latents = self.reference_latents(backgrounds, size, cfg)
        ref_noise = torch.cat([torch.randn((1, *latent_shape[1:]), generator=g) for g in generator]).to(device, dtype)
        if cfg:  # the unconditional pairs' zero-image references are noised like their conditional twins
            ref_noise = torch.cat([ref_noise, ref_noise])
        attention = self._attention_maps(part_prompt, pairs, cfg, attention_fusion > 0)
        with self.dual.attached(self.unet) as state, attention as maps:
            state.saim = saim
            latents = self._denoise(state, latents, embeds, ref_latents if bcm else None, ref_noise, guidance_scale, adapters)
        attention_map = average_map(maps, size).cpu().numpy() if maps else None
        return self._decode(latents, backgrounds, size, attention_map, attention_fusion)

    @torch.no_grad()
    def reference_latents(self, backgrounds: Sequence[np.ndarray], size: int, cfg: bool) -> torch.Tensor:
        """BCM reference latents, one per pair row-block: (P, 4, h, w), or (2P, ...) with guidance where rows
        [0, P) are the zero image's encoding (unconditional pairs) and [P, 2P) the backgrounds' (conditional).

        Reference ``r`` serves whole row ``2r`` of the ``[uncond pairs, cond pairs]`` batch. One VAE call
        per image, so a sample's bytes do not depend on its batch (BLAS picks kernels by M).
        """
        device, factor = self._execution_device, self.vae.config.scaling_factor
        refs = to_tensor(backgrounds, size).to(device, self.vae.dtype)
        latents = torch.cat([self.vae.encode(r[None]).latent_dist.mode() for r in refs]) * factor
        if not cfg:
            return latents
        zero = self.vae.encode(zero_image(size).to(device, self.vae.dtype)).latent_dist.mode() * factor
        return torch.cat([zero.expand_as(latents), latents])

    def _denoise(self, state, latents, embeds, ref_latents, ref_noise, guidance_scale: float, adapters) -> torch.Tensor:
        """The joint loop: per step a BCM write pass (when ``ref_latents``), then both branches with CFG."""
        cfg = guidance_scale > 1.0
        pairs = latents.shape[0] // 2
        row_adapters = pair_adapters(pairs * (2 if cfg else 1), *adapters)
        with self.progress_bar(total=len(self.scheduler.timesteps)) as bar:
            for t in self.scheduler.timesteps:
                if ref_latents is not None:  # whole rows of every pair: [uncond..., cond...] with guidance
                    self._write_background(state, ref_latents, ref_noise, t, embeds[0::2], adapters[0])
                state.bcm = "read" if ref_latents is not None else "off"
                model_in = self.scheduler.scale_model_input(torch.cat([latents] * 2) if cfg else latents, t)
                with branch_adapters(self.unet, row_adapters):
                    noise = self.unet(model_in, t, encoder_hidden_states=embeds).sample
                if cfg:
                    uncond, cond = noise.chunk(2)
                    noise = uncond + guidance_scale * (cond - uncond)
                latents = self.scheduler.step(noise, t, latents).prev_sample
                bar.update()
        return latents

    def _attention_maps(self, part_prompt: str, pairs: int, cfg: bool, enabled: bool):
        """Context recording the part rows' cross-attention to the part prompt's tokens (or nothing)."""
        if not enabled:
            return contextlib.nullcontext([])
        ids = self.tokenizer(part_prompt).input_ids  # [BOS, tokens..., EOS]
        rows = 2 * pairs * (2 if cfg else 1)
        part_rows = slice(rows - 2 * pairs + 1, rows, 2)  # the conditional part rows
        return capture_cross_attention(self.unet, rows, part_rows, list(range(1, len(ids) - 1)))

    def _prompt_embeds(self, whole: str, part: str, adapters, pairs: int, cfg: bool) -> torch.Tensor:
        """(2B or 4B, 77, D): rows (whole, part) per pair; with CFG [uncond pairs, cond pairs]."""
        # concepts loaded with load_lora_weights carry the shared text LoRA under both branch names; a model
        # fresh from training has it once (dual_lora.TEXT_ADAPTER, active): then no per-row routing
        loaded = getattr(self.text_encoder, "peft_config", {})
        routing = list(adapters) if all(a in loaded for a in adapters) else None
        cond = encode_prompts(self.text_encoder, self.tokenizer, [whole, part], routing)
        rows = [cond.repeat(pairs, 1, 1)]
        if cfg:
            uncond = encode_prompts(self.text_encoder, self.tokenizer, ["", ""], routing)
            rows.insert(0, uncond.repeat(pairs, 1, 1))
        return torch.cat(rows).to(self._execution_device, self.unet.dtype)

    def _write_background(self, state, ref_latents, ref_noise, t, whole_embeds, whole_adapter: str) -> None:
        """BCM write pass: the references noised to step ``t`` fill the self-attention bank (row r of the
        bank = whole row 2r of the denoised batch)."""
        state.bcm = "write"
        timestep = t.reshape(1).expand(len(ref_latents)).to(ref_latents.device)
        noisy = self.scheduler.add_noise(ref_latents, ref_noise.to(ref_latents.dtype), timestep)
        with branch_adapters(self.unet, [whole_adapter] * len(ref_latents)):
            self.unet(self.scheduler.scale_model_input(noisy, t), t, encoder_hidden_states=whole_embeds)

    def _decode(self, latents: torch.Tensor, backgrounds, size: int, attention, fusion: float) -> DualAnoDiffOutput:
        latents = latents.to(self.vae.dtype) / self.vae.config.scaling_factor
        images = torch.cat([self.vae.decode(pair).sample for pair in latents.split(2)])  # per pair: batch-invariant
        images = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        whole, part = images[0::2], images[1::2]
        refs = ((to_tensor(backgrounds, size) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        refs = refs.permute(0, 2, 3, 1).numpy()
        masks = np.stack([part_mask(p, w, r) for p, w, r in zip(part, whole, refs, strict=True)])
        if attention is not None:
            masks = np.stack([fuse_attention(m, a, fusion) for m, a in zip(masks, attention, strict=True)])
        agreement = [mask_agreement(m, w, r) for m, w, r in zip(masks, whole, refs, strict=True)]
        return DualAnoDiffOutput(images=whole, parts=part, masks=masks, agreement=agreement)


REFERENCE_FIT = 16  # good images the foreground (background colour) model is fitted on, once per run


class DualAnoDiffBackend(Backend):
    """``dualanodiff``: whole image + part image per sample; the mask comes from the part (pixel quality).

    The recipe holds the pair's seed and its BCM reference: the layout's good image (``source_path``),
    with its foreground (:mod:`anogen_data.layout.foreground`) inpainted away; the reference's path is
    also put in the record (``recipe["extra"]["bcm_reference"]`` -> ``SynthRecord.extra``). The generated image
    replaces the source (the method renders the whole object), resized to the source's size; the
    layout box is not used (the record's box comes from the mask).

    Context: ``concepts_dir`` (output of ``concepts learn --method dualanodiff``), ``model`` (default:
    the concepts' base model), ``device``, ``dtype``, ``good_paths`` (fit the foreground model) and
    ``options`` (``steps`` 50, ``guidance`` 2.0, ``scheduler`` "pndm" (the release's), ``resolution``,
    ``saim``, ``bcm``, ``attention_fusion``).
    """

    name = "dualanodiff"
    mask_quality = "pixel"

    def __init__(self, context) -> None:
        super().__init__(context)
        self._pipe: DualAnoDiffPipeline | None = None
        self._concepts: dict[str, tuple[str, str, DualModules, dict]] = {}
        self._background = None  # layout.foreground.BackgroundModel of the good images, fitted once

    def make_recipe(self, image: np.ndarray, layout: Layout, rng: np.random.Generator) -> dict:
        options = self.context.options or {}
        return {
            "seed": int(rng.integers(0, 2**31 - 1)),
            "reference": layout.source_path,
            RECIPE_EXTRA: {"bcm_reference": layout.source_path},
            "steps": int(options.get("steps", DEFAULT_STEPS)),
            "guidance": float(options.get("guidance", DEFAULT_GUIDANCE)),
            "scheduler": str(options.get("scheduler", DEFAULT_SCHEDULER)),
        }

    def apply(self, image: np.ndarray, layout: Layout, recipe: dict) -> tuple[np.ndarray, np.ndarray]:
        return self.apply_batch([image], [layout], [recipe])[0]

    def apply_batch(self, images, layouts, recipes) -> list[tuple[np.ndarray, np.ndarray]]:
        """Generate every sample of one defect type in one pipeline call (grouped by defect type)."""
        results: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(images)
        groups: dict[tuple, list[int]] = {}
        for i, (layout, recipe) in enumerate(zip(layouts, recipes, strict=True)):
            key = (layout.defect_type, recipe["steps"], recipe["guidance"], recipe.get("scheduler", "ddim"))
            groups.setdefault(key, []).append(i)  # recipes written before "scheduler" existed used DDIM
        for (defect, steps, guidance, scheduler), rows in groups.items():
            for i, pair in zip(rows, self._generate(defect, steps, guidance, scheduler, [images[i] for i in rows],
                                                    [recipes[i] for i in rows]), strict=True):
                results[i] = pair
        return results  # type: ignore[return-value]

    def _generate(self, defect: str, steps: int, guidance: float, scheduler: str, images, recipes) -> list[tuple[np.ndarray, np.ndarray]]:
        import cv2

        pipe = self.pipeline()
        pipe.scheduler = make_scheduler(scheduler, pipe.scheduler.config)
        whole, part, dual, facts = self.concept(defect)
        pipe.dual.load_state_dict(dual.state_dict())
        backgrounds = [background_only(im, self.foreground(im)) for im in images]
        options = self.context.options or {}
        out = pipe(
            backgrounds, [torch.Generator().manual_seed(r["seed"]) for r in recipes],
            whole_prompt=facts.get("whole_prompt", "a vfx with sks"), part_prompt=facts.get("part_prompt", "sks"),
            num_inference_steps=steps, guidance_scale=guidance, adapters=(whole, part),
            saim=bool(options.get("saim", True)), bcm=bool(options.get("bcm", True)),
            resolution=options.get("resolution"), attention_fusion=float(options.get("attention_fusion", 0.0)),
        )
        pairs = []
        for image, gen, mask in zip(images, out.images, out.masks, strict=True):
            h, w = image.shape[:2]
            pairs.append((cv2.resize(gen, (w, h), interpolation=cv2.INTER_CUBIC if w > gen.shape[1] else cv2.INTER_AREA),
                          cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)))
        return pairs

    def foreground(self, image: np.ndarray) -> np.ndarray:
        """Foreground of one good image, uint8 (H, W) {0, 255}, from a background model fitted once on
        the first ``REFERENCE_FIT`` good images (or on the image alone): never on the batch, so a sample's
        bytes do not depend on its batch-mates."""
        from anogen_data.data.image_io import read_image
        from anogen_data.layout.foreground import fit_background, foreground_mask

        if self._background is None and self.context.good_paths:
            paths = sorted(self.context.good_paths)[:REFERENCE_FIT]
            self._background = fit_background([read_image(Path(p)) for p in paths])
        model = self._background if self._background is not None else fit_background([image])
        return foreground_mask(image, model)

    def pipeline(self) -> DualAnoDiffPipeline:
        """The pipeline on the context's model/device/dtype (built once per backend)."""
        if self._pipe is None:
            from anogen_data.diffusion.loading import load_components

            from anogen_data.diffusion.speed import optimise_for_inference

            parts = load_components(self._model_id(), device=self.context.device, dtype=self.context.dtype)
            optimise_for_inference(parts)  # SDPA, batch-invariant timestep rows, channels_last on CUDA
            dual = DualModules.for_unet(parts.unet).place(parts.device, parts.dtype)
            self._pipe = DualAnoDiffPipeline(parts.vae, parts.text_encoder, parts.tokenizer, parts.unet,
                                             parts.scheduler, dual)
            self._pipe.set_progress_bar_config(disable=True)
        return self._pipe

    def _model_id(self) -> str:
        """``--model`` when given, else the base model the concepts were learned on (concept.json)."""
        if self.context.model:
            return self.context.model
        from anogen_data.diffusion.loading import DEFAULT_MODEL

        from anogen_data.schemas import read_concept

        for meta in sorted(Path(self.context.concepts_dir or ".").glob("*/concept.json")):
            return read_concept(meta).get("base_model") or DEFAULT_MODEL
        return DEFAULT_MODEL

    def concept(self, defect: str) -> tuple[str, str, DualModules, dict]:
        """(whole adapter, part adapter, DualModules, concept.json) of ``defect``, loaded once.

        Raises:
            AnogenError: no concepts folder, or no dualanodiff concept for ``defect`` in it.
        """
        if defect not in self._concepts:
            from anogen_data.schemas import read_concept

            root = Path(self.context.concepts_dir or "")
            folder = root / defect
            meta = folder / "concept.json"
            if not self.context.concepts_dir or not meta.is_file():
                raise AnogenError(
                    f"no DualAnoDiff concept for defect type '{defect}' in {root} (missing {meta}); run "
                    "`anogen-data concepts learn --method dualanodiff` and pass its --out to --concepts"
                )
            facts = read_concept(meta)
            if facts.get("method") != "dualanodiff":
                raise AnogenError(f"{meta} is a '{facts.get('method')}' concept; --backend dualanodiff needs --method dualanodiff")
            _check_base_model(meta, facts, self.pipeline().text_encoder)
            whole, part, dual = load_dual_concept(self.pipeline(), folder, prefix=f"{_safe(defect)}_")
            self._concepts[defect] = (whole, part, dual, facts)
        return self._concepts[defect]


def _check_base_model(meta: Path, facts: dict, text_encoder) -> None:
    """Raise when the concept was learned on another architecture than the one loaded for generation."""
    from anogen_data.diffusion.loading import text_encoder_fingerprint

    learned = facts.get("text_encoder_hash")
    if learned and learned != text_encoder_fingerprint(text_encoder):
        raise AnogenError(
            f"{meta} was learned on base model '{facts.get('base_model')}', which does not match the model "
            "loaded for generation; pass that model to --model (or re-learn the concept)"
        )


def _safe(name: str) -> str:
    """An adapter-name-safe form of a defect type (no dots: peft keys are module paths)."""
    return "".join(c if c.isalnum() else "_" for c in name)
