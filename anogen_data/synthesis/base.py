"""The one contract every synthesis backend implements: recipe first, then pure pixels.

Following albumentations' "draw the random parameters first, then apply pure functions", a backend
splits one synthetic sample into ``make_recipe`` (draws ALL randomness from a per-sample
``np.random.Generator`` into a small JSON-able dict) and ``apply`` (a pure function of the source
image, the layout and the recipe). Storing the recipe in ``records.jsonl`` makes every sample
replayable to the same bytes; batching and worker count never change the output because each sample
has its own seed.

Backends: CutPaste (Li et al., CVPR 2021), DRAEM Perlin (Zavrtanik et al., ICCV 2021), few-shot real
defect paste (CPU), AnoGen (Gui et al., ECCV 2024) and DualAnoDiff (Jin et al., CVPR 2025) on GPU.

Conventions: images are uint8 RGB (H, W, 3); masks are uint8 (H, W) with values {0, 255}, 255 = defect.
A backend may put facts about a sample that belong in its record (not only in its recipe) under the
recipe key ``"extra"`` (:data:`RECIPE_EXTRA`): a JSON-able dict the runner merges into
``SynthRecord.extra`` (e.g. DualAnoDiff's BCM reference image). The runner's own keys
(``shape_source``, and ``shot_mask`` / ``placement`` for real shapes) win on a clash.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from anogen_data.errors import AnogenError
from anogen_data.records import IndexEntry, Layout

RECIPE_EXTRA = "extra"  # recipe key of the backend facts merged into SynthRecord.extra


@dataclass(frozen=True)
class SynthesisContext:
    """What a backend may know besides the image and layout of one sample.

    Attributes:
        learn_shots: index entries with role "learn" (real anomalies; ``paste`` cuts defects from them).
        good_paths: role "train" good images (texture sources for ``perlin``, BCM references).
        concepts_dir: output folder of ``concepts learn`` (diffusion backends only).
        model: hub id, local folder or "tiny" (diffusion backends only).
        device: "auto", "cpu", "cuda", ...; dtype: "auto", "fp32", "fp16", "bf16" (long torch names read as aliases).
        batch_size: samples per ``apply_batch`` call (diffusion backends batch; CPU ones loop).
        options: backend-specific parameters (the ``generate.options.<backend>`` params section).
    """

    learn_shots: tuple[IndexEntry, ...] = ()
    good_paths: tuple[str, ...] = ()
    concepts_dir: str | None = None
    model: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 1
    options: dict[str, Any] = field(default_factory=dict)


def layout_mask(layout: Layout) -> np.ndarray:
    """The layout's mask decoded from its RLE: uint8 (H, W), {0, 255}, 255 = defect."""
    from pycocotools import mask as mask_utils

    rle = dict(layout.mask_rle)
    if isinstance(rle.get("counts"), str):
        rle["counts"] = rle["counts"].encode("ascii")
    return (mask_utils.decode(rle).astype(np.uint8) * 255)


def check_output(image: np.ndarray, source: np.ndarray, mask: np.ndarray, backend: str) -> None:
    """Raise when a backend broke the contract (same size and dtype, binary mask)."""
    if image.shape != source.shape or image.dtype != np.uint8:
        raise AnogenError(f"backend '{backend}' returned image {image.shape}/{image.dtype}, expected {source.shape}/uint8")
    if mask.shape != source.shape[:2] or mask.dtype != np.uint8:
        raise AnogenError(f"backend '{backend}' returned mask {mask.shape}/{mask.dtype}, expected {source.shape[:2]}/uint8")


class Backend(ABC):
    """A synthesis backend: ``(image, layout, generator) -> (image, mask)``.

    Subclasses set ``name`` (the key in ``BACKENDS``) and ``mask_quality`` ("pixel" for exact masks,
    "box" when only the layout box is trusted, as for AnoGen), and implement ``make_recipe`` and
    ``apply``. Diffusion backends override ``apply_batch`` to run several samples per forward pass.
    """

    name: ClassVar[str]
    mask_quality: ClassVar[str] = "pixel"

    def __init__(self, context: SynthesisContext) -> None:
        self.context = context

    @abstractmethod
    def make_recipe(self, image: np.ndarray, layout: Layout, rng: np.random.Generator) -> dict:
        """Draw every random parameter of one sample into a JSON-able dict (no pixels yet).

        Facts for the sample's record go under ``recipe[RECIPE_EXTRA]`` (a dict; see the module docstring).

        Args:
            image: the source good image, uint8 (H, W, 3).
            layout: where and what shape the defect is.
            rng: the sample's own generator (seeded from ``layout.seed``); never the global RNG.
        """

    @abstractmethod
    def apply(self, image: np.ndarray, layout: Layout, recipe: dict) -> tuple[np.ndarray, np.ndarray]:
        """Pure: make the defect described by ``recipe``.

        Returns:
            (image, mask): uint8 (H, W, 3) of the source's size, and uint8 (H, W) in {0, 255}.
        """

    def __call__(self, image: np.ndarray, layout: Layout, generator: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draw a recipe with ``generator`` and apply it."""
        return self.apply(image, layout, self.make_recipe(image, layout, generator))

    def apply_batch(
        self, images: Sequence[np.ndarray], layouts: Sequence[Layout], recipes: Sequence[dict]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Apply several recipes; the default loops over ``apply`` (diffusion backends batch)."""
        return [self.apply(im, lay, rec) for im, lay, rec in zip(images, layouts, recipes, strict=True)]
