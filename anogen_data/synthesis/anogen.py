"""The ``anogen`` backend: a learned defect token generated inside the layout's box (AnoGen stage 2).

AnoGen (Gui et al., "Few-Shot Anomaly-Driven Generation for Anomaly Classification and Segmentation",
ECCV 2024, https://arxiv.org/abs/2505.09263): on a good image and a box, blended latent diffusion with
the defect type's learned token (``concepts learn --method anogen``) makes a defect only in the box;
50 DDIM steps, guidance 10. The label is the box (``mask_quality = "box"``); as an extra the mask PNG
is refined to where the image visibly changed inside the box (threshold + morphology).

The seam. The release keeps the whole decoded image, so the VAE's reconstruction error covers the
whole picture. Pasting back only the box (our first version) drew that error as a hard rectangle
exactly on the label: a detector can learn "VAE texture in a rectangle". We blend the generated window
into the source with a weight that ramps linearly from 1 to 0 across the box border, over a band of
``blend_margin`` pixels centred on it (:func:`blend_weights`); outside the blend region (the box grown
by half the margin, ``recipe["blend_xyxy"]``) the image stays byte-identical to the source, and the
refined mask may mark any pixel of that region that visibly changed. ``blend_margin: 0`` restores the
hard paste at the box. High-resolution sources: a window of the model's resolution around the blend
region is cropped, generated and blended back; the whole image is never resized (a region larger than
the model's resolution gets a larger window, resized to the model's resolution and back).

Conventions: images uint8 (H, W, 3) RGB; masks uint8 (H, W) {0, 255}, 255 = defect; boxes xyxy with
x1/y1 exclusive.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from anogen_data.errors import AnogenError
from anogen_data.records import Layout
from anogen_data.synthesis.base import Backend, SynthesisContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnoGenOptions:
    """``generate.options.anogen`` (defaults = AnoGen's released sampling settings)."""

    steps: int = 50  # DDIM steps (AnoGen)
    guidance: float = 10.0  # classifier-free guidance scale (AnoGen)
    prompt: str = "{}"  # "{}" is replaced by the learned token; AnoGen prompts with the token alone
    negative_prompt: str = ""  # the unconditional prompt of classifier-free guidance
    mask_threshold: int = 24  # refined mask: max channel change (0-255) that counts as "changed"
    mask_kernel: int = 3  # refined mask: open + close with this square kernel (pixels; 1 = none)
    blend_margin: int = 16  # px band centred on the box border where the window fades into the source; 0 = hard paste
    compile: bool = False  # torch.compile the UNet (pays off for runs of hundreds of images on a GPU)


def parse_options(options: dict | None) -> AnoGenOptions:
    """``AnoGenOptions`` from the context's options dict; unknown keys raise naming the valid ones."""
    options = dict(options or {})
    names = {f.name for f in fields(AnoGenOptions)}
    unknown = set(options) - names
    if unknown:
        raise AnogenError(f"unknown anogen option(s) {sorted(unknown)}; valid: {', '.join(sorted(names))}")
    return AnoGenOptions(**options)


def check_box(box: Sequence[int], width: int, height: int, where: str = "") -> None:
    """Raise when ``box`` (x0, y0, x1, y1) is not inside a width x height image."""
    x0, y0, x1, y1 = (int(v) for v in box)
    if not (0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height):
        raise AnogenError(
            f"{where or 'layout'}: box {list(box)} is outside the {width}x{height} image; re-run `anogen-data propose`"
        )


def crop_window(width: int, height: int, box: Sequence[int], resolution: int) -> tuple[int, int, int, int]:
    """The window (x0, y0, x1, y1) generated for ``box``: ``resolution`` square (or the box, if larger)
    centred on the box and shifted to lie inside the image (smaller images: the whole side)."""
    bx0, by0, bx1, by1 = box
    ww, wh = min(width, max(resolution, bx1 - bx0)), min(height, max(resolution, by1 - by0))
    x0 = min(max(0, round((bx0 + bx1 - ww) / 2)), width - ww)
    y0 = min(max(0, round((by0 + by1 - wh) / 2)), height - wh)
    return x0, y0, x0 + ww, y0 + wh


def latent_box_mask(box_in_window: Sequence[float], window_size: tuple[int, int], resolution: int, factor: int) -> np.ndarray:
    """(1, R/f, R/f) float32 {0, 1}: the latent cells covering the box once the window is resized to R."""
    ww, wh = window_size
    side = resolution // factor
    x0, y0, x1, y1 = box_in_window
    sx, sy = resolution / ww / factor, resolution / wh / factor
    mask = np.zeros((1, side, side), np.float32)
    mask[0, math.floor(y0 * sy) : math.ceil(y1 * sy), math.floor(x0 * sx) : math.ceil(x1 * sx)] = 1.0
    return mask


def blend_region(box: Sequence[int], margin: int, width: int, height: int) -> tuple[int, int, int, int]:
    """The pixels a blend of ``margin`` may change: ``box`` grown by ceil(margin / 2), clipped to the image."""
    grow = math.ceil(max(0, margin) / 2)
    x0, y0, x1, y1 = box
    return max(0, x0 - grow), max(0, y0 - grow), min(width, x1 + grow), min(height, y1 + grow)


def blend_weights(region: Sequence[int], box: Sequence[int], margin: int) -> np.ndarray:
    """float32 (h, w) in [0, 1] over ``region`` (x0, y0, x1, y1): the generated window's weight per pixel.

    ``clip(0.5 - d / margin, 0, 1)`` with d the signed distance of the pixel centre to the border of
    ``box`` (negative inside): 1 deeper than margin / 2 inside the box, 0.5 on its border, 0 from
    margin / 2 outside, linear in between. ``margin <= 0``: 1 inside the box, 0 outside (hard paste).
    """
    rx0, ry0, rx1, ry1 = region
    x0, y0, x1, y1 = box
    xc = np.arange(rx0, rx1, dtype=np.float64)[None, :] + 0.5
    yc = np.arange(ry0, ry1, dtype=np.float64)[:, None] + 0.5
    dx = np.maximum(np.maximum(x0 - xc, xc - x1), 0.0)
    dy = np.maximum(np.maximum(y0 - yc, yc - y1), 0.0)
    inside = (dx == 0) & (dy == 0)
    if margin <= 0:
        return np.broadcast_to(inside, (ry1 - ry0, rx1 - rx0)).astype(np.float32)
    depth = np.minimum(np.minimum(xc - x0, x1 - xc), np.minimum(yc - y0, y1 - yc))
    signed = np.where(inside, -depth, np.hypot(dx, dy))
    return np.clip(0.5 - signed / margin, 0.0, 1.0).astype(np.float32)


def blend_into(source: np.ndarray, generated: np.ndarray, region: Sequence[int], weights: np.ndarray) -> np.ndarray:
    """``source`` with ``region`` replaced by ``round(w * generated + (1 - w) * source)``; every pixel
    outside ``region`` (and every pixel of weight 0) keeps the source's bytes. Both uint8 (H, W, 3)."""
    x0, y0, x1, y1 = region
    out = source.copy()
    w = weights[..., None]
    mixed = w * generated[y0:y1, x0:x1].astype(np.float32) + (1 - w) * source[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.where(w > 0, np.clip(np.rint(mixed), 0, 255), source[y0:y1, x0:x1]).astype(np.uint8)
    return out


def refined_mask(source: np.ndarray, output: np.ndarray, box: Sequence[int], threshold: int, kernel: int,
                 region: Sequence[int] | None = None) -> np.ndarray:
    """uint8 (H, W) {0, 255}: pixels inside ``region`` (default: ``box``) whose largest channel change
    exceeds ``threshold``, opened and closed with a ``kernel`` square; the whole box when nothing passes."""
    import cv2

    x0, y0, x1, y1 = region if region is not None else box
    mask = np.zeros(source.shape[:2], np.uint8)
    diff = np.abs(output[y0:y1, x0:x1].astype(np.int16) - source[y0:y1, x0:x1]).max(axis=2)
    inside = np.where(diff > threshold, 255, 0).astype(np.uint8)
    if kernel > 1 and inside.size:
        element = np.ones((kernel, kernel), np.uint8)
        inside = cv2.morphologyEx(cv2.morphologyEx(inside, cv2.MORPH_OPEN, element), cv2.MORPH_CLOSE, element)
    if inside.any():
        mask[y0:y1, x0:x1] = inside
    else:
        bx0, by0, bx1, by1 = box
        mask[by0:by1, bx0:bx1] = 255
    return mask


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    if (image.shape[1], image.shape[0]) == size:
        return image
    shrink = size[0] < image.shape[1]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


class AnoGenBackend(Backend):
    """Blended latent diffusion with the defect type's learned token, inside the layout's box."""

    name = "anogen"
    mask_quality = "box"

    def __init__(self, context: SynthesisContext) -> None:
        super().__init__(context)
        self.options = parse_options(context.options)
        if not context.concepts_dir:
            raise AnogenError("the anogen backend needs --concepts DIR from `anogen-data concepts learn --method anogen`")
        self._components = None
        self._tokens: dict[str, str] = {}

    @property
    def components(self):
        """The model, loaded on first use (hub id, folder or "tiny"), set up for speed on CUDA."""
        if self._components is None:
            from anogen_data.diffusion.loading import DEFAULT_MODEL, load_components
            from anogen_data.diffusion.speed import optimise_for_inference

            c = load_components(self.context.model or DEFAULT_MODEL, device=self.context.device, dtype=self.context.dtype)
            self._components = optimise_for_inference(c, compile_unet=self.options.compile)
        return self._components

    def token_for(self, defect_type: str) -> str:
        """The learned token of ``defect_type``, installed in the model on first use."""
        if defect_type not in self._tokens:
            from anogen_data.concepts.textual_inversion import install_embedding, load_embedding
            from anogen_data.paths import inside
            from anogen_data.schemas import read_concept
            from anogen_data.diffusion.loading import text_encoder_fingerprint

            folder = Path(self.context.concepts_dir) / defect_type
            meta_path = folder / "concept.json"
            if not meta_path.is_file():
                raise AnogenError(
                    f"{meta_path} does not exist; learn it with `anogen-data concepts learn --method anogen --defect {defect_type}`"
                )
            meta = read_concept(meta_path)
            if meta.get("method") != "anogen" or not isinstance(meta.get("weights"), str):
                raise AnogenError(f"{meta_path} is a '{meta.get('method')}' concept; the anogen backend needs --method anogen")
            path = inside(folder, meta["weights"], f"{meta_path}: weights")
            token, vector = load_embedding(path)
            install_embedding(self.components, token, vector, source=str(path))
            if meta.get("text_encoder_hash") != text_encoder_fingerprint(self.components.text_encoder):
                log.warning("%s was learned on '%s', not on this text encoder", meta_path, meta.get("base_model"))
            self._tokens[defect_type] = token
        return self._tokens[defect_type]

    def make_recipe(self, image: np.ndarray, layout: Layout, rng: np.random.Generator) -> dict:
        """The sample's torch seed, its generation window and the sampling settings (JSON-able)."""
        height, width = image.shape[:2]
        check_box(layout.bbox_xyxy, width, height, where=f"layout {layout.id}")
        o = self.options
        region = blend_region(layout.bbox_xyxy, o.blend_margin, width, height)
        return {
            "seed": int(rng.integers(0, 2**63 - 1)),
            "window_xyxy": list(crop_window(width, height, region, self.components.resolution)),
            "blend_margin": o.blend_margin,
            "blend_xyxy": list(region),  # the only pixels that may differ from the source
            "prompt": o.prompt.format(self.token_for(layout.defect_type)),
            "steps": o.steps,
            "guidance": o.guidance,
        }

    def apply(self, image: np.ndarray, layout: Layout, recipe: dict) -> tuple[np.ndarray, np.ndarray]:
        """One sample (see :meth:`apply_batch`)."""
        return self.apply_batch([image], [layout], [recipe])[0]

    def apply_batch(self, images, layouts, recipes) -> list[tuple[np.ndarray, np.ndarray]]:
        """Generate the samples ``context.batch_size`` at a time; empty boxes return the source unchanged.

        Returns:
            (image uint8 (H, W, 3), mask uint8 (H, W) {0, 255}) per sample; outside its blend region
            (``recipe["blend_xyxy"]``: the box grown by half of ``blend_margin``) each image is
            byte-identical to its source.
        """
        results: list = [None] * len(images)
        todo = []
        for i, (image, layout) in enumerate(zip(images, layouts, strict=True)):
            x0, y0, x1, y1 = layout.bbox_xyxy
            check_box(layout.bbox_xyxy, image.shape[1], image.shape[0], where=f"layout {layout.id}")
            if x1 <= x0 or y1 <= y0:
                results[i] = (image.copy(), np.zeros(image.shape[:2], np.uint8))
            else:
                todo.append(i)
        size = max(1, int(self.context.batch_size))
        for start in range(0, len(todo), size):
            chunk = todo[start : start + size]
            outs = self._generate([images[i] for i in chunk], [layouts[i] for i in chunk], [recipes[i] for i in chunk])
            for i, out in zip(chunk, outs):
                results[i] = out
        return results

    def _generate(self, images, layouts, recipes) -> list[tuple[np.ndarray, np.ndarray]]:
        """Windows -> blended latent diffusion (one batch) -> paste the boxes back."""
        import torch

        from anogen_data.diffusion.blended import blended_latent_diffusion

        c, o = self.components, self.options
        res, f = c.resolution, c.vae_scale_factor
        pixels, masks = [], []
        for image, layout, recipe in zip(images, layouts, recipes):
            self.token_for(layout.defect_type)  # replayed recipes: the prompt's token must be installed
            wx0, wy0, wx1, wy1 = recipe["window_xyxy"]
            window = _resize(image[wy0:wy1, wx0:wx1], (res, res))
            pixels.append(torch.from_numpy(np.ascontiguousarray(window)).permute(2, 0, 1).float() / 127.5 - 1)
            bx0, by0, bx1, by1 = layout.bbox_xyxy
            masks.append(latent_box_mask((bx0 - wx0, by0 - wy0, bx1 - wx0, by1 - wy0), (wx1 - wx0, wy1 - wy0), res, f))
        generators = [torch.Generator().manual_seed(int(r["seed"])) for r in recipes]
        if len({(r["steps"], r["guidance"]) for r in recipes}) != 1:
            raise AnogenError("recipes of one batch must share steps and guidance; use --batch-size 1 to replay mixed recipes")
        generated = blended_latent_diffusion(
            c, torch.stack(pixels), torch.from_numpy(np.stack(masks)), [r["prompt"] for r in recipes], generators,
            steps=int(recipes[0]["steps"]), guidance=float(recipes[0]["guidance"]), negative_prompt=o.negative_prompt,
        ).numpy()
        outputs = []
        for image, layout, recipe, gen in zip(images, layouts, recipes, generated):
            wx0, wy0, wx1, wy1 = recipe["window_xyxy"]
            margin = int(recipe.get("blend_margin", 0))  # recipes written before blending pasted the box
            region = blend_region(layout.bbox_xyxy, margin, image.shape[1], image.shape[0])
            if not (wx0 <= region[0] and wy0 <= region[1] and region[2] <= wx1 and region[3] <= wy1):
                raise AnogenError(f"layout {layout.id}: blend region {list(region)} is not inside the recipe's "
                                  f"window {recipe['window_xyxy']}; re-run generate to make fresh recipes")
            window = image.copy()
            window[wy0:wy1, wx0:wx1] = _resize(gen, (wx1 - wx0, wy1 - wy0))
            out = blend_into(image, window, region, blend_weights(region, layout.bbox_xyxy, margin))
            mask = refined_mask(image, out, layout.bbox_xyxy, o.mask_threshold, o.mask_kernel, region=region)
            outputs.append((out, mask))
        return outputs
