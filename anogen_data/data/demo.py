"""The built-in demo category: a procedurally rendered, MVTec-AD-like category (Bergmann et al., CVPR 2019).

A machined metal washer (a shaded disk with a hole and a notch) lies on a textured background, slightly
shifted and rotated per image, so foreground estimation matters. Defects are drawn only on the part:

- ``scratch``: 1-3 thin bright straight lines,
- ``spot``: a dark filled ellipse (stain),
- ``crack``: a dark random-walk polyline.

Masks are exact (drawn with the same primitives, no anti-aliasing, clipped to the part): uint8, 255 =
defect. Images are 8-bit RGB PNG, ``size`` x ``size``. Every image has its own seed derived from
(seed, kind, number), so the same arguments give the same bytes.

THIS IS A DEMO: it lets every command run on a fresh machine without downloads. It is never evidence of
quality; use real data (``--data``) for any claim.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zlib
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from anogen_data.data.image_io import write_png
from anogen_data.errors import AnogenError
from anogen_data.files import follow_umask

CATEGORY = "demo"
DEFECTS = ("scratch", "spot", "crack")
DEMO_VERSION = 1  # bump when the rendering changes, so stale caches are not reused


def _rng(seed: int, kind: str, number: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(kind.encode()), number]))


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Woven-fabric-like texture, float32 (size, size, 3) in [0, 255]."""
    coarse = rng.normal(0.0, 1.0, (max(2, size // 16), max(2, size // 16))).astype(np.float32)
    low = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    weave = np.sin(xx * (2 * np.pi / 6.0)) * np.sin(yy * (2 * np.pi / 6.0))
    grain = rng.normal(0.0, 4.0, (size, size)).astype(np.float32)
    base = 70.0 + 10.0 * low + 6.0 * weave + grain
    tint = np.array([0.85, 0.95, 1.1], dtype=np.float32) * rng.uniform(0.95, 1.05)
    return np.clip(base[..., None] * tint, 0, 255)


def _part(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """The washer: (shading float32 (H, W) in [0, 255], mask bool (H, W), (cx, cy, radius))."""
    cx = size / 2 + rng.uniform(-0.04, 0.04) * size
    cy = size / 2 + rng.uniform(-0.04, 0.04) * size
    radius = size * rng.uniform(0.33, 0.36)
    hole = radius * 0.38
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dist = np.hypot(xx - cx, yy - cy)
    mask = (dist <= radius) & (dist >= hole)
    notch = np.hypot(xx - (cx + 0.8 * radius * np.cos(angle)), yy - (cy + 0.8 * radius * np.sin(angle)))
    mask &= notch > radius * 0.09
    light = 175.0 + 45.0 * ((xx - cx) * 0.6 - (yy - cy) * 0.8) / radius  # directional light, top-left
    rings = 6.0 * np.sin(dist * 0.9)  # lathe marks
    shading = light + rings + rng.normal(0.0, 2.0, (size, size)).astype(np.float32)
    return np.clip(shading, 0, 255), mask, (cx, cy, radius)


def _point_on_part(rng: np.random.Generator, geometry: tuple[float, float, float]) -> np.ndarray:
    cx, cy, radius = geometry
    r = radius * rng.uniform(0.5, 0.9)
    a = rng.uniform(0, 2 * np.pi)
    return np.array([cx + r * np.cos(a), cy + r * np.sin(a)])


def _defect_mask(rng: np.random.Generator, kind: str, size: int, geometry, point=_point_on_part) -> np.ndarray:
    """uint8 (H, W), 255 where the defect is drawn (before clipping to the part); ``point(rng, geometry)``
    draws where a defect starts."""
    mask = np.zeros((size, size), np.uint8)
    scale = size / 256.0
    if kind == "scratch":
        for _ in range(int(rng.integers(1, 4))):
            p = point(rng, geometry)
            a, length = rng.uniform(0, np.pi), rng.uniform(25, 60) * scale
            d = np.array([np.cos(a), np.sin(a)]) * length / 2
            cv2.line(mask, tuple(int(v) for v in p - d), tuple(int(v) for v in p + d), 255,
                     max(1, round(2 * scale)), cv2.LINE_8)
    elif kind == "spot":
        p = point(rng, geometry)
        axes = (max(2, int(rng.uniform(5, 12) * scale)), max(2, int(rng.uniform(4, 9) * scale)))
        cv2.ellipse(mask, (int(p[0]), int(p[1])), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1, cv2.LINE_8)
    elif kind == "crack":
        p, heading, points = point(rng, geometry), rng.uniform(0, 2 * np.pi), []
        for _ in range(int(rng.integers(8, 14))):
            points.append(p.astype(np.int32))
            heading += rng.normal(0, 0.5)
            p = p + np.array([np.cos(heading), np.sin(heading)]) * 5 * scale
        cv2.polylines(mask, [np.array(points)], False, 255, max(1, round(1.5 * scale)), cv2.LINE_8)
    else:
        raise ValueError(f"unknown demo defect '{kind}'")
    return mask


_DEFECT_COLOUR = {"scratch": (235.0, 235.0, 240.0), "spot": (70.0, 50.0, 35.0), "crack": (30.0, 28.0, 26.0)}


def render_pair(seed: int, kind: str, number: int, size: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One demo scene: (clean uint8 RGB (size, size, 3), the same scene with the defect, mask uint8
    (size, size) {0, 255}); for ``kind == "good"`` the second image equals the first and the mask is None.
    The two images differ exactly where the mask is 255."""
    rng = _rng(seed, kind, number)
    image = _background(rng, size)
    shading, part, geometry = _part(rng, size)
    image[part] = shading[part, None] * np.array([0.97, 0.98, 1.0], dtype=np.float32)
    clean = image.round().astype(np.uint8)
    if kind == "good":
        return clean, clean, None
    for _ in range(20):  # redraw until the clipped defect is visible (deterministic: same rng stream)
        mask = np.where(part, _defect_mask(rng, kind, size, geometry), 0).astype(np.uint8)
        if mask.sum() >= 255 * 6:
            break
    inside = mask > 0
    colour = np.array(_DEFECT_COLOUR[kind], dtype=np.float32)
    defective = clean.copy()
    defective[inside] = (0.25 * clean[inside] + 0.75 * colour).round().astype(np.uint8)
    return clean, defective, mask


def render_image(seed: int, kind: str, number: int, size: int = 256) -> tuple[np.ndarray, np.ndarray | None]:
    """One demo image: (uint8 RGB (size, size, 3), mask uint8 (size, size) {0, 255} or None for "good")."""
    _, image, mask = render_pair(seed, kind, number, size)
    return image, mask


def render_demo(
    root: Path,
    *,
    size: int = 256,
    n_good: int = 60,
    n_test_good: int = 10,
    defects: tuple[str, ...] = DEFECTS,
    n_per_defect: int = 8,
    seed: int = 0,
    category: str = CATEGORY,
) -> Path:
    """Render the demo category into ``root/category`` in MVTec AD layout; returns that folder.

    Writes ``train/good/NNN.png`` (n_good), ``test/good/NNN.png`` (n_test_good), ``test/<defect>/NNN.png``
    and ``ground_truth/<defect>/NNN_mask.png`` (n_per_defect each). Not atomic: see ``demo_root``.
    ``category`` is a folder name for the washer, or one of ``demo_variants.VARIANTS`` (rendered by
    ``demo_variants.render_variant``).
    """
    from anogen_data.data.demo_variants import VARIANTS, variant_image

    folder = Path(root) / category
    render = partial(variant_image, category) if category in VARIANTS else render_image
    jobs = [("train", "good", i) for i in range(n_good)] + [("test", "good", i) for i in range(n_test_good)]
    jobs += [("test", kind, i) for kind in defects for i in range(n_per_defect)]
    for split, kind, number in jobs:
        image, mask = render(seed + (1000 if split == "test" else 0), kind, number, size)
        out = folder / split / kind
        out.mkdir(parents=True, exist_ok=True)
        write_png(out / f"{number:03d}.png", image)
        if mask is not None:
            gt = folder / "ground_truth" / kind
            gt.mkdir(parents=True, exist_ok=True)
            write_png(gt / f"{number:03d}_mask.png", mask)
    (folder / "README.txt").write_text(
        ("anogen-data built-in DEMO category: procedurally rendered washers with scratch/spot/crack defects.\n"
         if category not in VARIANTS else f"anogen-data built-in DEMO variant '{category}' (anogen_data.data.demo_variants).\n")
        + "It exists so every command runs without downloads; it is never evidence of quality.\n",
        encoding="utf-8",
    )
    return folder


def default_cache() -> Path:
    """``$ANOGEN_CACHE`` or ``~/.cache/anogen-data``."""
    return Path(os.environ.get("ANOGEN_CACHE") or Path.home() / ".cache" / "anogen-data")


def demo_root(cache: Path | None = None, category: str = CATEGORY) -> Path:
    """A data root holding the full demo category (``<root>/demo``, or a variant ``<root>/demo-dark`` ...
    of ``demo_variants.VARIANTS``), rendered once into the cache.

    Rendering goes to a temporary folder renamed into place, so concurrent callers (pytest -n 2, two
    DVC stages) never see a half-written category; the loser of a race discards its copy.
    """
    base = Path(cache) if cache is not None else default_cache()
    final = base / f"{category}-v{DEMO_VERSION}"
    if (final / category / "README.txt").is_file():
        return final
    try:
        base.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".demo-tmp-", dir=base))
        follow_umask(tmp)
    except OSError as exc:
        raise AnogenError(
            f"cannot write the demo category into {base} ({exc.strerror}); set ANOGEN_CACHE to a writable folder"
        ) from exc
    try:
        render_demo(tmp) if category == CATEGORY else render_demo(tmp, category=category)
        os.rename(tmp, final)
    except OSError:
        if not (final / category / "README.txt").is_file():
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
