"""Real defects as evidence for where synthetic defects go (issue 17).

The foreground estimate (``layout.foreground``) looks at good images only; the learn shots show where
defects really occur. Two facts are taken from them (role "learn" only, never the eval split):

- **agreement**: the share of learn-shot defect pixels that lie on the estimated foreground of their own
  image, with a tolerance at its boundary (``tolerant_object``: a dark defect on the rim of a light part
  is cut out of a colour estimate as a notch, yet it is on the object). On an object category it should
  be ~1; when it is not (``MIN_AGREEMENT``), the estimate is wrong and placement follows the learn shots'
  positions in the image frame instead of the foreground.
- **a density over position**: each learn-shot mask, smoothed by a Gaussian (``BANDWIDTH`` of the frame),
  accumulated on a ``GRID`` x ``GRID`` map. For objects the frame is the object's (offset from the object
  centre in object radii, +-``REACH``), so a defect type seen on the rim is placed on the rim of an object
  that sits elsewhere in the next image; for textures it is the image (x / W, y / H). A texture whose
  defects all fall in a small region (the convex hull of all learn-shot defect pixels, ``extent``,
  covers less than ``CONCENTRATED`` of the frame, from >= ``MIN_SHOTS`` shots) is placed by the density;
  one whose defects spread keeps uniform placement, as before.

AnoGen and DualAnoDiff place masks uniformly on a foreground (or reuse the real mask positions);
AnomalyDiffusion does not model position at all. The density is our addition.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

GRID = 64  # cells per side of a density map
BANDWIDTH = 0.06  # Gaussian sigma as a share of the frame side (image frame) or of 2 * REACH (object frame)
REACH = 1.5  # the object frame spans +-REACH object radii around the centre
MIN_AGREEMENT = 0.9  # below this share of learn-shot defect pixels on the foreground, the estimate is wrong
CONCENTRATED = 0.25  # learn defects whose hull covers less of the frame than this are a region (grid, KolektorSDD: ~0.36-0.39)
MIN_SHOTS = 3  # fewer learn shots than this say nothing about how spread defects are
NOTCH = 0.06  # tolerant_object closes notches up to this share of the short image side...
EDGE = 0.02  # ...and grows the object by this share, so defects on the rim count as on the object
SUPPORT_LEVEL = 0.05  # a cell belongs to the support when its density exceeds this share of the maximum


@dataclass(frozen=True)
class Density:
    """A density over defect positions: float32 (GRID, GRID), sums to 1.

    ``frame`` "image": cell (i, j) covers y / H in [i, i + 1) / GRID and x / W likewise. ``frame`` "object":
    cell (i, j) covers an offset from the object centre of (x, y) = (-REACH + (j + 0.5) * 2 REACH / GRID, ...)
    object radii.
    """

    grid: np.ndarray
    frame: str

    @property
    def support(self) -> float:
        """Share of the frame where the density exceeds SUPPORT_LEVEL of its maximum (0..1)."""
        return float((self.grid > SUPPORT_LEVEL * self.grid.max()).mean()) if self.grid.max() > 0 else 1.0

    def on_image(self, hw: tuple[int, int], centre: np.ndarray | None = None, radius: float | None = None,
                 radial: bool = False) -> np.ndarray:
        """The density evaluated on an image of size ``hw``: float32 (H, W), max 1 (0 = never).

        Args:
            hw: target image (height, width).
            centre, radius: the object frame in the target image (px); needed for ``frame == "object"``.
            radial: object frame only: average over all angles (polar placement keeps radius, not angle).
        """
        h, w = hw
        if self.frame == "image":
            out = cv2.resize(self.grid, (w, h), interpolation=cv2.INTER_LINEAR)
        else:
            ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
            dx, dy = (xs - centre[0]) / radius, (ys - centre[1]) / radius
            grid = _radial(self.grid) if radial else self.grid
            cell = 2 * REACH / GRID
            map_x = ((dx + REACH) / cell - 0.5).astype(np.float32)
            map_y = ((dy + REACH) / cell - 0.5).astype(np.float32)
            out = cv2.remap(grid, map_x, map_y, cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        top = float(out.max())
        return (out / top).astype(np.float32) if top > 0 else out.astype(np.float32)


def _radial(grid: np.ndarray) -> np.ndarray:
    """The object-frame density averaged over rotations about the centre (36 turns of 10 degrees)."""
    centre = ((GRID - 1) / 2.0, (GRID - 1) / 2.0)
    turns = [cv2.warpAffine(grid, cv2.getRotationMatrix2D(centre, angle, 1.0), (GRID, GRID)) for angle in range(0, 360, 10)]
    return np.mean(turns, axis=0).astype(np.float32)


def _normalise(grid: np.ndarray, sigma_cells: float) -> np.ndarray:
    grid = cv2.GaussianBlur(grid.astype(np.float32), (0, 0), sigma_cells)
    total = float(grid.sum())
    return grid / total if total > 0 else grid


def image_density(masks: list[np.ndarray]) -> Density:
    """The density of defect pixels over the image frame from full-image uint8 masks (255 = defect)."""
    grid = np.zeros((GRID, GRID), np.float32)
    for mask in masks:
        cells = cv2.resize((mask > 0).astype(np.float32), (GRID, GRID), interpolation=cv2.INTER_AREA)
        if cells.sum() > 0:
            grid += cells / cells.sum()  # every shot weighs the same, whatever its defect's size
    return Density(_normalise(grid, BANDWIDTH * GRID), "image")


def object_density(masks: list[np.ndarray], frames: list[tuple[np.ndarray, float]]) -> Density:
    """The density of defect pixels over the object frame: each mask's pixels as offsets from its image's
    object centre, in object radii (``frames``: (centre (x, y) px, radius px) per mask)."""
    grid = np.zeros((GRID, GRID), np.float32)
    for mask, (centre, radius) in zip(masks, frames):
        ys, xs = np.nonzero(mask)
        if not xs.size:
            continue
        step = max(1, xs.size // 4000)  # a subsample is plenty for a 64 x 64 histogram
        dx, dy = (xs[::step] - centre[0]) / radius, (ys[::step] - centre[1]) / radius
        hist, _, _ = np.histogram2d(dy, dx, bins=GRID, range=[[-REACH, REACH], [-REACH, REACH]])
        if hist.sum() > 0:
            grid += (hist / hist.sum()).astype(np.float32)
    return Density(_normalise(grid, BANDWIDTH * GRID), "object")


def extent(masks: list[np.ndarray]) -> float:
    """Share of the frame (0..1) inside the convex hull of all defect pixels of full-image uint8 masks,
    each mapped onto one GRID x GRID frame (so images of different sizes pool); 0 without defects."""
    cells = np.zeros((GRID, GRID), np.uint8)
    for mask in masks:
        cells |= cv2.resize((mask > 0).astype(np.uint8), (GRID, GRID), interpolation=cv2.INTER_AREA) > 0
        cells |= cv2.resize((mask > 0).astype(np.uint8), (GRID, GRID), interpolation=cv2.INTER_NEAREST) > 0
    points = cv2.findNonZero(cells)
    if points is None:
        return 0.0
    hull = np.zeros_like(cells)
    cv2.fillConvexPoly(hull, cv2.convexHull(points), 1)
    return float(hull.mean())


def tolerant_object(foreground: np.ndarray) -> np.ndarray:
    """``foreground`` (uint8 (H, W), 255 = object) with notches narrower than ``NOTCH`` of the short side
    closed, holes filled and the outline grown by ``EDGE``: where a defect still counts as on the object.

    A colour estimate cuts a dark defect at the rim of a light part out as a notch (the demo washer's
    spots); measured on the raw estimate such a defect looks off the object and would overrule a right one.
    """
    side = min(foreground.shape[:2])
    close_k, grow_k = max(3, int(NOTCH * side)) | 1, max(3, int(EDGE * side)) | 1
    disk = lambda k: cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))  # noqa: E731
    closed = cv2.morphologyEx((foreground > 0).astype(np.uint8) * 255, cv2.MORPH_CLOSE, disk(close_k))
    outer, _ = cv2.findContours(closed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(closed)
    cv2.drawContours(filled, outer, -1, 255, thickness=cv2.FILLED)
    return cv2.dilate(filled, disk(grow_k))


def agreement(masks: list[np.ndarray], foregrounds: list[np.ndarray]) -> float:
    """Share of all defect pixels (uint8 masks, 255) lying on their image's foreground (uint8, 255), with
    ``tolerant_object``'s tolerance at its boundary; 1 if there are none."""
    total = sum(int(np.count_nonzero(m)) for m in masks)
    on = sum(int(np.count_nonzero((m > 0) & (tolerant_object(f) > 0))) for m, f in zip(masks, foregrounds))
    return on / total if total else 1.0


def weigh(kind: str, masks: list[np.ndarray], objects: list[np.ndarray]) -> dict:
    """The placement decision from the learn shots (see the module docstring).

    Args:
        kind: the estimate's call: "object", "texture" or "full" (the user's ``--foreground full``).
        masks: every learn shot's full-image defect mask, uint8 (H, W), 255 = defect.
        objects: for "object", each shot's estimated object (holes filled), uint8 like its mask; else [].

    Returns:
        ``kind``; ``agreement`` (share of defect pixels on the foreground, 0..1; 1.0 on a texture; None
        without shots); ``support`` and ``extent`` (share of the frame the defect density / the defects'
        hull cover; None without shots); ``placement``: "object" (the object frame), "uniform" (anywhere
        on the foreground) or "image-density" (where the learn shots have defects, in the image frame);
        ``note``: the one line naming a contradiction between estimate and evidence, or None.
    """
    support = image_density(masks).support if masks else None
    spanned = extent(masks) if masks else None
    found, placement, note = None, "uniform", None
    if kind == "object":
        found, placement = (agreement(masks, objects) if masks else None), "object"
        if found is not None and found < MIN_AGREEMENT:
            placement = "image-density"
            note = (f"only {found:.0%} of the learn-shot defect pixels lie on the estimated object: the estimate is "
                    "wrong here, so defects go where the learn shots have them (see layouts_preview.png; "
                    "--foreground full ignores the estimate)")
    elif kind == "texture":
        found = 1.0 if masks else None
        if len(masks) >= MIN_SHOTS and spanned < CONCENTRATED:
            placement = "image-density"
            note = (f"the good images look like a texture, but all {len(masks)} learn-shot defects lie in {spanned:.0%} "
                    "of the frame: defects go where the learn shots have them (see layouts_preview.png)")
    return {"kind": kind, "agreement": found, "support": support, "extent": spanned, "placement": placement, "note": note}
