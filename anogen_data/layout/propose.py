"""Propose layouts: for each synthetic sample pick the good image, defect type, mask shape and box
before any pixel is made (the "layout" step AnoGen, Gui et al., ECCV 2024, feeds its box-guided
diffusion, and that our CPU backends fill).

Each sample ``i`` gets its own seed ``sample_seed(run_seed, i)``; every random choice of the sample
comes from a generator seeded with it, so a layout never depends on the others (order, workers, n).

Placement of real shapes (``placement``): "free" puts the warped learn-shot mask anywhere on the
(eroded) object; "polar" keeps where the real defect sat: its distance from the object centre, as a
fraction of the object radius, is kept from its learn shot, and the whole shot is turned (and maybe
mirrored) about the object centre to a new angle (``shapes.polar_shape``), so defects that real data
shows on a rim (MVTec bottle's broken_large/broken_small on the mouth ring) stay on the rim, tangent to
it. The prior is learned from the learn shots only (role "learn"), never from the eval split. "auto" is
polar for object categories, free for textures (no centre) and for synthetic shapes (no real position).

The learn shots are also evidence for the foreground itself (``layout.evidence``, issue 17): free
placement of a real defect type on an object follows that type's density of real defect positions
relative to the object (not the whole foreground); a texture whose learn-shot defects all lie in one
region is placed by their density in the image frame; and when the learn-shot defects lie off the
estimated object (the estimate is wrong), placement follows their positions in the image frame instead.
Either contradiction is logged as one warning line and recorded in ``placement_stats()``.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence

import cv2
import numpy as np

from anogen_data.data.image_io import read_image, read_mask
from anogen_data.errors import AnogenError
from anogen_data.layout.boxes import BoxStats, place_box
from anogen_data.layout.evidence import Density, image_density, object_density, weigh
from anogen_data.layout.foreground import MODES, BackgroundModel, fill_holes, fit_background, foreground_mask
from anogen_data.layout.rle import encode_rle
from anogen_data.layout.shapes import (
    SHAPE_KINDS, crop_defect, mask_centroid, polar_shape, real_shape, synthetic_shape,
)
from anogen_data.records import IndexEntry, Layout

log = logging.getLogger(__name__)

SYNTHETIC_DEFECT = "synthetic"  # defect type name when a category has no real anomalies
SHAPES = ("auto", "real", "perlin", "stroke", "mixed")
PLACEMENTS = ("auto", "polar", "free")
MIN_COVERAGE = 0.9  # accept a placement when this fraction of the shape lies on the (eroded) foreground
PLACEMENT_TRIES = 20
EDGE_MARGIN = 0.04  # object categories: defects keep this share of the image side off the object's edge
BACKGROUND_IMAGES = 40  # good images used to fit the background model (evenly spread)
STATS_IMAGES = 8  # good images whose foreground share is reported (evenly spread)


def sample_seed(run_seed: int, number: int) -> int:
    """The seed of sample ``number`` in a run: independent streams via ``np.random.SeedSequence``."""
    return int(np.random.SeedSequence([int(run_seed), int(number)]).generate_state(1)[0])


def split_counts(n: int, weights: dict[str, int]) -> dict[str, int]:
    """Split ``n`` over keys in proportion to ``weights`` (largest remainder, ties by name)."""
    total = sum(weights.values())
    exact = {k: n * w / total for k, w in weights.items()}
    counts = {k: math.floor(v) for k, v in exact.items()}
    rest = sorted(weights, key=lambda k: (-(exact[k] - counts[k]), k))
    for k in rest[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def interleave(counts: dict[str, int]) -> list[str]:
    """A defect type per sample, spread evenly (not in blocks) so any prefix is representative."""
    slots = [((j + 0.5) / c, k) for k, c in sorted(counts.items()) for j in range(c)]
    return [k for _, k in sorted(slots)]


class LayoutProposer:
    """Holds what layouts are made from: good images, learn shots, foreground model, box statistics.

    Args:
        entries: the index (IndexEntry rows); role "train" good images are sources, role "learn"
            anomalies give real shapes and box statistics.
        foreground: "auto" (estimated) or "full" (whole image).
        shape: "auto" (real shapes when the defect type has learn shots, else perlin/stroke), "real",
            "perlin", "stroke" or "mixed" (perlin or stroke).
        placement: where real shapes go: "auto" (polar on object categories, else free), "polar"
            (the learn shot's radius about the object centre, a new angle) or "free" (anywhere on the object).
        loader: image reader (uint8 RGB), injectable for tests.
    """

    def __init__(
        self,
        entries: Sequence[IndexEntry],
        *,
        foreground: str = "auto",
        shape: str = "auto",
        placement: str = "auto",
        loader: Callable[[str], np.ndarray] = read_image,
    ) -> None:
        if shape not in SHAPES:
            raise AnogenError(f"unknown shape '{shape}'; choose one of {', '.join(SHAPES)}")
        if placement not in PLACEMENTS:
            raise AnogenError(f"unknown placement '{placement}'; choose one of {', '.join(PLACEMENTS)}")
        if foreground not in MODES:
            raise AnogenError(f"unknown foreground '{foreground}'; choose one of {', '.join(MODES)}")
        self.goods = [e for e in entries if e.role == "train" and e.label == "good"]
        if not self.goods:
            raise AnogenError("the index has no role 'train' good images to put defects on; check the index file")
        self.shots: dict[str, list[IndexEntry]] = defaultdict(list)
        for e in entries:
            if e.role == "learn" and e.label == "anomaly" and e.mask_path:
                self.shots[e.defect_type].append(e)
        self.foreground, self.shape, self.placement, self.loader = foreground, shape, placement, loader
        self._model: BackgroundModel | None = None
        self._objects: dict[str, np.ndarray] = {}
        self._fg: dict[str, np.ndarray] = {}
        self._crops: dict[str, np.ndarray] = {}
        self._offsets: dict[str, np.ndarray] = {}
        self._evidence: dict | None = None
        self._densities: dict[str, Density] = {}
        self.stats = {d: BoxStats.from_masks([read_mask(e.mask_path) for e in es]) for d, es in self.shots.items()}
        self.all_stats = BoxStats(tuple(s for st in self.stats.values() for s in st.sizes))

    def defect_counts(self, n: int, defect: str | None = None) -> dict[str, int]:
        """Samples per defect type: ``n`` split in proportion to the learn shots, or all to ``defect``."""
        if n < 1:
            raise AnogenError(f"--n must be at least 1 (got {n})")
        known = sorted(self.shots) or [SYNTHETIC_DEFECT]
        if defect is not None:
            if defect not in known:
                raise AnogenError(f"defect type '{defect}' has no learn shots in the index; valid: {', '.join(known)}")
            return {defect: n}
        if not self.shots:
            return {SYNTHETIC_DEFECT: n}
        return split_counts(n, {d: len(es) for d, es in self.shots.items()})

    def foreground_of(self, path: str, hw: tuple[int, int]) -> np.ndarray:
        """Where defects may go in a good image, uint8 (H, W), 255 = object (cached at low resolution).

        For object categories this is the estimated object eroded by EDGE_MARGIN of the image side, so
        that a defect never sits on the object's rim against the background (e.g. bottle's grey edge
        ring); textures, ``foreground="full"`` and an estimate the learn shots contradict get the whole image.
        """
        small = self._object(path)
        if small is None:
            return np.full(hw, 255, np.uint8)
        if path not in self._fg:
            k = 2 * max(1, round(EDGE_MARGIN * 256)) + 1
            eroded = cv2.erode(small, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
            self._fg[path] = eroded if eroded.any() else small
        return cv2.resize(self._fg[path], (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)

    def _fit_model(self) -> BackgroundModel:
        if self._model is None:
            step = max(1, len(self.goods) // BACKGROUND_IMAGES)
            self._model = fit_background(self.loader(e.path) for e in self.goods[::step])
        return self._model

    def _estimate(self, path: str) -> np.ndarray | None:
        """The estimated object of an image at 256 x 256, uint8 (255 = object); None = texture or "full"."""
        if self.foreground == "full" or self._fit_model().texture:
            return None
        if path not in self._objects:
            self._objects[path] = cv2.resize(foreground_mask(self.loader(path), self._model, self.foreground),
                                             (256, 256), interpolation=cv2.INTER_NEAREST)
        return self._objects[path]

    def _object(self, path: str) -> np.ndarray | None:
        """The object of an image at 256 x 256, uint8 (255 = object); None = whole frame (a texture,
        ``foreground="full"``, or an estimate the learn shots contradict)."""
        if self.evidence()["placement"] == "image-density":
            return None
        return self._estimate(path)

    def evidence(self) -> dict:
        """What the learn shots say about the foreground estimate (computed once; see ``layout.evidence``).

        Returns a dict: ``kind`` ("object" | "texture" | "full"), ``agreement`` (share of learn-shot defect
        pixels on the estimated foreground of their images, 0..1, None without shots), ``support`` (share
        of the image frame the learn-shot defect density covers) and ``extent`` (share inside the hull of
        all learn-shot defect pixels; both None without shots), ``placement``
        ("object" | "uniform" | "image-density") and ``note`` (the contradiction, one line, or None).
        """
        if self._evidence is not None:
            return self._evidence
        shots = [e for es in self.shots.values() for e in es]
        masks = [read_mask(e.mask_path) for e in shots]
        kind = "full" if self.foreground == "full" else ("texture" if self._fit_model().texture else "object")
        # inside the object's outline counts: a defect may itself look like the background (bright glass)
        objects = [] if kind != "object" else [
            cv2.resize(fill_holes(self._estimate(e.path)), (m.shape[1], m.shape[0]), interpolation=cv2.INTER_NEAREST)
            for e, m in zip(shots, masks)]
        self._evidence = weigh(kind, masks, objects)
        if self._evidence["note"]:
            log.warning(self._evidence["note"])
        return self._evidence

    def density(self, defect: str) -> Density | None:
        """Where real ``defect`` defects lie: object frame on objects, image frame when placement is
        "image-density" (pooled over all defect types: the region of the frame defects occur in); None
        for uniform placement or a type without learn shots."""
        placement = self.evidence()["placement"]
        if placement == "uniform" or not self.shots or (placement == "object" and not self.shots.get(defect)):
            return None
        key = defect if placement == "object" else "*"
        if key not in self._densities:
            if placement == "object":
                shots = self.shots[defect]
                frames = [self.object_frame(e.path, (e.height, e.width)) for e in shots]
                kept = [(read_mask(e.mask_path), f) for e, f in zip(shots, frames) if f is not None]
                self._densities[key] = object_density([m for m, _ in kept], [f for _, f in kept])
            else:
                self._densities[key] = image_density([read_mask(e.mask_path) for es in self.shots.values() for e in es])
        return self._densities[key]

    def density_on(self, defect: str, path: str, hw: tuple[int, int], radial: bool = False) -> np.ndarray | None:
        """``density(defect)`` evaluated on a good image, float32 (H, W), max 1; None = uniform."""
        density = self.density(defect)
        if density is None:
            return None
        if density.frame == "image":
            return density.on_image(hw)
        frame = self.object_frame(path, hw)
        return None if frame is None else density.on_image(hw, *frame, radial=radial)

    def object_mask(self, path: str, hw: tuple[int, int]) -> np.ndarray:
        """The estimated object of a good image (before the EDGE_MARGIN erosion), uint8 (H, W), 255 = object;
        all 255 for the whole frame."""
        small = self._object(path)
        return np.full(hw, 255, np.uint8) if small is None else cv2.resize(small, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)

    def placement_density(self, defect: str, path: str, hw: tuple[int, int]) -> np.ndarray | None:
        """The density placement of ``defect`` really uses on a good image (radius only when polar), float32
        (H, W), max 1; None = uniform over the foreground."""
        return self.density_on(defect, path, hw, radial=self.uses_polar(defect))

    def placement_stats(self) -> dict:
        """The placement decision and its numbers, for the ``layouts.jsonl`` sidecar and the dataset card:
        ``evidence()`` plus ``cue``, ``separability`` and ``foreground_fraction`` (mean share of the frame
        the estimated object covers, before the EDGE_MARGIN erosion, on STATS_IMAGES evenly spread good
        images; 1.0 for the whole frame)."""
        stats = dict(self.evidence())
        model = None if self.foreground == "full" else self._fit_model()
        step = max(1, len(self.goods) // STATS_IMAGES)
        objects = [self._object(e.path) for e in self.goods[::step][:STATS_IMAGES]]
        fractions = [1.0 if obj is None else float((obj > 0).mean()) for obj in objects]
        stats.update(cue=None if model is None else model.cue,
                     separability=None if model is None else round(model.separability, 4),
                     foreground_fraction=round(float(np.mean(fractions)), 4))
        for key in ("agreement", "support", "extent"):
            stats[key] = None if stats[key] is None else round(float(stats[key]), 4)
        return stats

    def prepare(self) -> None:
        """Fit the background model, weigh the evidence and, when the model needs the network, estimate
        every good image's object now: forked workers then never run torch (a forked thread pool can hang)."""
        self.evidence()
        if self._model is not None and self._model.features is not None and self.evidence()["placement"] == "object":
            for entry in self.goods:
                self._estimate(entry.path)

    def object_frame(self, path: str, hw: tuple[int, int]) -> tuple[np.ndarray, float] | None:
        """(centre (x, y) in px, radius in px) of the object in an image of size ``hw``; None for textures.

        The centre is the object mask's centroid, the radius that of a disk of the same area.
        """
        small = self._object(path)
        if small is None or not small.any():
            return None
        scale = np.array([hw[1] / 256.0, hw[0] / 256.0])
        centre = (mask_centroid(small) + 0.5) * scale - 0.5
        return centre, math.sqrt(np.count_nonzero(small) * scale[0] * scale[1] / math.pi)

    def uses_polar(self, defect: str) -> bool:
        """Whether layouts of ``defect`` are placed polar (real shapes on an object category)."""
        real = self.shape in ("real", "auto") and bool(self.shots.get(defect))
        if self.placement == "free" or not real:
            return False
        has_centre = self._object(self.goods[0].path) is not None
        if self.placement == "polar" and not has_centre:
            raise AnogenError(
                "placement 'polar' needs an object with a centre, but this category is a texture (or foreground "
                "is 'full', or the learn shots contradict the estimated object); use placement 'auto' or 'free'"
            )
        return has_centre

    def _shape(self, defect: str, seed: int, hw: tuple[int, int], rng: np.random.Generator
               ) -> tuple[np.ndarray, str, str | None]:
        """(mask crop uint8 {0, 255}, shape_source "real" | "perlin" | "stroke", learn-shot mask path or None)."""
        kind = self.shape
        if kind == "auto":
            kind = "real" if self.shots.get(defect) else "mixed"
        if kind == "real":
            if not self.shots.get(defect):
                raise AnogenError(f"shape 'real' needs learn shots of '{defect}'; use --shape perlin or stroke")
            shot = self.shots[defect][int(rng.integers(len(self.shots[defect])))]
            if shot.mask_path not in self._crops:
                self._crops[shot.mask_path] = crop_defect(read_mask(shot.mask_path))[0]
            ratio = math.sqrt(hw[0] * hw[1] / (shot.height * shot.width))
            mask, _ = real_shape(self._crops[shot.mask_path], seed, size_ratio=ratio, target_hw=hw)
            return mask, "real", shot.mask_path
        if kind == "mixed":
            kind = SHAPE_KINDS[int(rng.integers(len(SHAPE_KINDS)))]
        bh, bw = self.stats.get(defect, self.all_stats).sample(rng, hw)
        return synthetic_shape(kind, bh, bw, rng), kind, None

    def propose(self, number: int, defect: str, run_seed: int, category: str) -> Layout:
        """The layout of sample ``number`` (deterministic in (run_seed, number, defect))."""
        seed = sample_seed(run_seed, number)
        rng = np.random.default_rng([seed, 1])
        source = self.goods[int(rng.integers(len(self.goods)))]
        hw = (source.height, source.width)
        if self.uses_polar(defect):
            return self._propose_polar(number, defect, seed, rng, source, category)
        shape, shape_source, shot_mask = self._shape(defect, seed, hw, rng)
        fg = self.foreground_of(source.path, hw)
        weights = self.density_on(defect, source.path, hw)  # where real defects of this type lie; None = anywhere
        if weights is not None:
            weights = np.where(fg > 0, weights, 0.0)
            weights = weights if weights.max() > 0 else None  # the density misses this object: plain foreground
        best: tuple[float, tuple[int, int, int, int], np.ndarray] | None = None
        for _ in range(PLACEMENT_TRIES):
            box = place_box(shape.shape, fg, rng, weights)
            coverage, mask = _fit(shape, box, fg)
            if best is None or coverage > best[0]:
                best = (coverage, box, mask)
            if coverage >= MIN_COVERAGE:
                break
        _, box, mask = best
        return Layout(
            id=f"syn_{number:06d}", category=category, defect_type=defect, source_path=source.path,
            bbox_xyxy=box, mask_rle=encode_rle(mask), seed=seed, shape_source=shape_source, shot_mask=shot_mask,
            placement=None if shot_mask is None else "free",
        )

    def _shot_offset(self, shot: IndexEntry) -> np.ndarray:
        """The shot's (defect centroid - object centre) as a fraction of the object radius, (x, y)."""
        if shot.mask_path not in self._offsets:
            frame = self.object_frame(shot.path, (shot.height, shot.width))
            if frame is None:
                raise AnogenError(f"{shot.path}: no object found in this learn shot; use placement 'free'")
            centre, radius = frame
            self._offsets[shot.mask_path] = (mask_centroid(read_mask(shot.mask_path)) - centre) / radius
        return self._offsets[shot.mask_path]

    def _propose_polar(self, number: int, defect: str, seed: int, rng: np.random.Generator, source: IndexEntry,
                       category: str) -> Layout:
        """A real shape at its learn shot's relative radius, turned to a new angle (see ``polar_shape``).

        A try whose shape covers less than MIN_COVERAGE of the foreground is redrawn with a new shape
        seed (``sample_seed(seed, try)``); the layout stores the seed that was kept, so paste replays it.
        """
        shot = self.shots[defect][int(rng.integers(len(self.shots[defect])))]
        if shot.mask_path not in self._crops:
            self._crops[shot.mask_path] = crop_defect(read_mask(shot.mask_path))[0]
        offset = self._shot_offset(shot)
        hw = (source.height, source.width)
        centre, radius = self.object_frame(source.path, hw)
        fg = self.foreground_of(source.path, hw)
        ratio = math.sqrt(hw[0] * hw[1] / (shot.height * shot.width))
        best: tuple[float, tuple[int, int, int, int], np.ndarray, int] | None = None
        for attempt in range(PLACEMENT_TRIES):
            shape_seed = seed if attempt == 0 else sample_seed(seed, attempt)
            shape, _, turn = polar_shape(self._crops[shot.mask_path], shape_seed, size_ratio=ratio, target_hw=hw)
            x, y = centre + radius * (turn @ offset) - mask_centroid(shape)  # the box corner that puts it there
            bh, bw = min(shape.shape[0], hw[0]), min(shape.shape[1], hw[1])
            x0, y0 = int(np.clip(round(x), 0, hw[1] - bw)), int(np.clip(round(y), 0, hw[0] - bh))
            box = (x0, y0, x0 + bw, y0 + bh)
            coverage, mask = _fit(shape, box, fg)
            if best is None or coverage > best[0]:
                best = (coverage, box, mask, shape_seed)
            if coverage >= MIN_COVERAGE:
                break
        _, box, mask, shape_seed = best
        return Layout(
            id=f"syn_{number:06d}", category=category, defect_type=defect, source_path=source.path,
            bbox_xyxy=box, mask_rle=encode_rle(mask), seed=shape_seed,
            shape_source="real", shot_mask=shot.mask_path, placement="polar",
        )


def _fit(shape: np.ndarray, box: tuple[int, int, int, int], fg: np.ndarray) -> tuple[float, np.ndarray]:
    """(share of the shape on the foreground, full-image mask clipped to it) for ``shape`` put in ``box``."""
    full = np.zeros(fg.shape, np.uint8)
    x0, y0, x1, y1 = box
    full[y0:y1, x0:x1] = shape[: y1 - y0, : x1 - x0]
    on_fg = np.where(fg > 0, full, 0).astype(np.uint8)
    coverage = float(np.count_nonzero(on_fg)) / max(1, np.count_nonzero(full))
    return coverage, (on_fg if on_fg.any() else full)


def propose_layouts(
    entries: Sequence[IndexEntry], n: int, *, category: str, seed: int = 0, defect: str | None = None,
    foreground: str = "auto", shape: str = "auto", placement: str = "auto",
) -> Iterator[Layout]:
    """Yield ``n`` layouts ``syn_000000 ...`` (see ``LayoutProposer``); defect types interleaved."""
    proposer = LayoutProposer(entries, foreground=foreground, shape=shape, placement=placement)
    for number, defect_type in enumerate(interleave(proposer.defect_counts(n, defect))):
        yield proposer.propose(number, defect_type, seed, category)
