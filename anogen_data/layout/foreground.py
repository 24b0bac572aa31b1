"""Foreground estimation from the good images alone, so defects land on the object.

Object categories (MVTec bottle, hazelnut, the demo washer) are photographed on a background;
texture categories (grid, tile, KolektorSDD) fill the frame. We build a background model from the good
set's image borders: the median CIE-Lab colour and the spread of border pixels around it. The
foreground of one image is its (smoothed) Lab distance to that colour, cut at one threshold for the
category (the median over the good images of Otsu's threshold, Otsu, IEEE SMC 1979: an image's own
Otsu split would make a strong defect "the object" of a learn shot), cleaned with morphology, small
components dropped and holes under HOLE_FRACTION of the frame filled.

Low-contrast objects (a black tyre on near-black cloth, a light nut on a light plate; issue 17) defeat
the colour distance: the split is weak and the category was called a texture. When colour alone does
not separate the good set well (median Otsu separability < COLOUR_ENOUGH), we add a texture cue:
pretrained EfficientNet-Lite0 features (stride 8, 40 channels; ``anogen_data.features``) compared with
the border's (per-channel standardised distance to the border median). Each cue is divided by its
border's 90th percentile and the two are combined as sqrt(colour^2 + features^2); the cue (colour, or
colour + features) that separates the good set better is kept. Easy categories never load the network,
so they cost what they did before. (We also tried the variation of each pixel across the good
shots, since a fixed background barely changes: an object that never moves barely changes either, and
on a low-contrast object the two could not be told apart.)

A category is a texture (whole image = foreground) when the kept cue finds no clear two-class split
(median separability < ``min_separability``), or the split covers nearly the whole frame or almost
nothing. ``mode="full"`` forces the whole image. The learn shots' real defects are the final judge of
this estimate (``layout.evidence``).

Masks are uint8 (H, W) with 255 = foreground; work happens at <= 256 px and is resized back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from anogen_data.errors import AnogenError

WORK_SIDE = 256  # long side of the working resolution: fast and plenty for a region estimate
MODES = ("auto", "full")
COLOUR_ENOUGH = 0.85  # colour alone separates the good set this well: features are not needed (fast path)
MIN_FRACTION = 0.02  # a median foreground below this share of the frame is noise, not an object
HOLE_FRACTION = 0.01  # holes in the object smaller than this share of the frame are filled (grooves, specks)
_NETWORK: list = []  # the EfficientNet-Lite0 of this process, loaded on first use


@dataclass(frozen=True)
class BackgroundModel:
    """What the good set says about its background.

    Attributes:
        colour: median Lab colour of the image borders (OpenCV 8-bit Lab scale).
        spread: 90th percentile of border pixels' Lab distance to ``colour`` (background noise).
        texture: True when the images have no separable background (whole image = foreground).
        features: (centre (C,), scale (C,), 90th percentile distance) of the border's EfficientNet-Lite0
            stride-8 features, or None when colour alone separates the set (see the module docstring).
        separability: median Otsu separability (between / total variance, 0..1) of the kept cue.
        fraction: median foreground share of the frame on the fitting images (before morphology).
        threshold: median per-image threshold of the score on the fitting images (Otsu, at least the
            floor). Every image is cut at this one threshold, not at its own Otsu threshold: on a learn shot
            a strong defect (a bright scratch on a dark part) would otherwise become "the object".
    """

    colour: tuple[float, float, float]
    spread: float
    texture: bool
    features: tuple[tuple[float, ...], tuple[float, ...], float] | None = None
    separability: float = 0.0
    fraction: float = 0.0
    threshold: float = 0.0

    @property
    def cue(self) -> str:
        """"colour" or "colour+features": what separates object from background."""
        return "colour" if self.features is None else "colour+features"


def _small_lab(image: np.ndarray) -> np.ndarray:
    """Blurred Lab float32 (h, w, 3) at <= WORK_SIDE px of a uint8 RGB image."""
    h, w = image.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h, w))
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (5, 5), 0)
    return cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)


def _border(lab: np.ndarray) -> np.ndarray:
    """Pixels of the outer 4% frame, (N, 3)."""
    h, w = lab.shape[:2]
    b = max(1, round(0.04 * min(h, w)))
    frame = np.ones((h, w), bool)
    frame[b:-b, b:-b] = False
    return lab[frame]


def _distance(lab: np.ndarray, colour: np.ndarray) -> np.ndarray:
    return np.linalg.norm(lab - colour[None, None, :], axis=-1)


def _otsu(distance: np.ndarray) -> tuple[float, float]:
    """(threshold, separability) of Otsu on a distance map; separability = between / total variance."""
    top = float(distance.max()) or 1.0
    scaled = np.clip(distance / top * 255.0, 0, 255).astype(np.uint8)
    thr, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    hi = scaled > thr
    total = float(scaled.var()) or 1e-6
    if hi.all() or not hi.any():
        return thr / 255.0 * top, 0.0
    w1 = hi.mean()
    between = w1 * (1 - w1) * (float(scaled[hi].mean()) - float(scaled[~hi].mean())) ** 2
    return thr / 255.0 * top, between / total


def _feature_maps(images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """EfficientNet-Lite0 stride-8 features of uint8 RGB images at <= WORK_SIDE px: float32 (h/8, w/8, 40)."""
    import torch

    from anogen_data.features.efficientnet_lite import load_efficientnet_lite0

    if not _NETWORK:
        _NETWORK.append(load_efficientnet_lite0(fuse=True))
    net = _NETWORK[0]
    last = net.stage_ends[2]  # after stage 3: stride 8, 40 channels (low-level texture)
    out, threads = [], torch.get_num_threads()
    torch.set_num_threads(1)  # small maps: one thread is as fast, and ~20x faster on a busy machine (no spin-waits)
    try:
        with torch.no_grad():
            for image in images:
                h, w = image.shape[:2]
                scale = min(1.0, WORK_SIDE / max(h, w))
                size = (max(32, round(w * scale)), max(32, round(h * scale)))
                small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
                x = torch.from_numpy(np.ascontiguousarray(small)).permute(2, 0, 1)[None].float() / 255.0
                x = net.stem(((x - net.mean) / net.std).contiguous(memory_format=torch.channels_last))
                for block in net.blocks[: last + 1]:
                    x = block(x)
                out.append(x[0].permute(1, 2, 0).numpy().astype(np.float32))
    finally:
        torch.set_num_threads(threads)
    return out


def _feature_distance(fmap: np.ndarray, features: tuple) -> np.ndarray:
    centre, scale, ref = features
    return np.linalg.norm((fmap - np.asarray(centre, np.float32)) / np.asarray(scale, np.float32), axis=-1) / ref


def _score(lab: np.ndarray, fmap: np.ndarray | None, colour: np.ndarray, spread: float, features) -> np.ndarray:
    """Per-pixel object score at the working size: Lab distance (colour only), or the combined
    sqrt((colour / spread)^2 + (features / ref)^2) with features bilinearly resized to ``lab``."""
    dist = _distance(lab, colour)
    if features is None:
        return dist
    zf = cv2.resize(_feature_distance(fmap, features), (lab.shape[1], lab.shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.sqrt((dist / max(spread, 1e-6)) ** 2 + zf**2)


def _floor(spread: float, features) -> float:
    """The lowest threshold of the score: twice the border spread (colour), its combined equivalent (both)."""
    return 2 * spread if features is None else float(np.sqrt(2.0))


def _split_stats(scores: list[np.ndarray], floor: float) -> tuple[float, float, float]:
    """(median separability, median object fraction, median threshold) of Otsu on each score map."""
    seps, fracs, thrs = [], [], []
    for score in scores:
        thr, sep = _otsu(score)
        seps.append(sep)
        thrs.append(max(thr, floor))
        fracs.append(float((score > thrs[-1]).mean()))
    return float(np.median(seps)), float(np.median(fracs)), float(np.median(thrs))


def fit_background(images: Iterable[np.ndarray], *, min_separability: float = 0.7, max_fraction: float = 0.9) -> BackgroundModel:
    """Fit the background model on good images (uint8 RGB (H, W, 3), any sizes).

    Args:
        images: the category's good images (role "train").
        min_separability: below this median Otsu separability the set counts as a texture.
        max_fraction: above this median foreground fraction the set counts as a texture.
    """
    images = list(images)
    labs = [_small_lab(im) for im in images]
    if not labs:
        raise AnogenError("cannot estimate the foreground: the index has no good (role 'train') images")
    colour = np.median(np.concatenate([_border(lab) for lab in labs]), axis=0)
    spread = float(np.percentile(np.concatenate([_distance(_border(lab)[None], colour)[0] for lab in labs]), 90))
    sep, frac, threshold = _split_stats([_distance(lab, colour) for lab in labs], 2 * spread)
    features = None
    if sep < COLOUR_ENOUGH or frac > max_fraction:
        fmaps = _feature_maps(images)
        border = np.concatenate([_border(f) for f in fmaps])
        centre, scale = np.median(border, axis=0), border.std(axis=0) + 1e-3
        ref = float(np.percentile(np.linalg.norm((border - centre) / scale, axis=-1), 90)) or 1.0
        candidate = (tuple(float(v) for v in centre), tuple(float(v) for v in scale), ref)
        both = _split_stats([_score(lab, f, colour, spread, candidate) for lab, f in zip(labs, fmaps)], np.sqrt(2.0))
        if both[0] > sep:
            features, (sep, frac, threshold) = candidate, both
    texture = sep < min_separability or frac > max_fraction or frac < MIN_FRACTION
    return BackgroundModel(colour=tuple(float(c) for c in colour), spread=spread, texture=texture,
                           features=features, separability=sep, fraction=frac, threshold=threshold)


def foreground_mask(image: np.ndarray, model: BackgroundModel, mode: str = "auto") -> np.ndarray:
    """The foreground of one image: uint8 (H, W), 255 = object (where defects may go).

    Args:
        image: uint8 RGB (H, W, 3).
        model: from ``fit_background`` on the same category's good images.
        mode: "auto" (model decides object vs texture) or "full" (whole image).
    """
    if mode not in MODES:
        raise AnogenError(f"unknown foreground mode '{mode}'; choose one of {', '.join(MODES)}")
    h, w = image.shape[:2]
    if mode == "full" or model.texture:
        return np.full((h, w), 255, np.uint8)
    lab = _small_lab(image)
    fmap = None if model.features is None else _feature_maps([image])[0]
    score = _score(lab, fmap, np.asarray(model.colour, np.float32), model.spread, model.features)
    thr = model.threshold or max(_otsu(score)[0], _floor(model.spread, model.features))
    small = (score > thr).astype(np.uint8) * 255
    k = max(3, round(0.02 * max(small.shape)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    small = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel)
    small = cv2.morphologyEx(small, cv2.MORPH_OPEN, kernel)
    small = _drop_small_components(small, 0.01)
    small = fill_holes(small, HOLE_FRACTION)
    if not small.any():
        return np.full((h, w), 255, np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def fill_holes(mask: np.ndarray, max_fraction: float = 1.0) -> np.ndarray:
    """Fill background components of a uint8 mask that do not touch the image edge and are smaller than
    ``max_fraction`` of the image (HOLE_FRACTION: dark grooves, specks on the object; a washer's
    through-hole is larger; 1.0: everything inside the object's outline)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats((mask == 0).astype(np.uint8), connectivity=4)
    h, w = mask.shape
    x, y, bw, bh = (stats[:, k] for k in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT))
    inner = (x > 0) & (y > 0) & (x + bw < w) & (y + bh < h) & (stats[:, cv2.CC_STAT_AREA] < max_fraction * mask.size)
    inner[0] = False  # label 0 is the object itself
    return np.where(inner[labels], 255, mask).astype(np.uint8)


def _drop_small_components(mask: np.ndarray, min_fraction: float) -> np.ndarray:
    """Keep connected components larger than ``min_fraction`` of the image."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_fraction * mask.size
    return np.where(keep[labels], 255, 0).astype(np.uint8)


def estimate_foreground(images: Sequence[np.ndarray], mode: str = "auto") -> list[np.ndarray]:
    """Foreground masks of ``images`` with a background model fitted on those same images.

    This is the entry point other modules use (e.g. DualAnoDiff's background compensation): pass the
    category's good images (uint8 RGB (H, W, 3)); get one uint8 (H, W) mask per image, 255 = object.
    For texture categories (or ``mode="full"``) every mask is all 255.
    """
    model = fit_background(images)
    return [foreground_mask(image, model, mode) for image in images]
