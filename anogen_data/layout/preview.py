"""``layouts_preview.png``: see the placement before generating thousands of images (issue 17).

A row of up to PREVIEW_TILES good images (the ones most layouts use), each at TILE px with the estimated
foreground outline (green), the learned placement density as a heat overlay (azure, stronger = likelier;
absent when placement is uniform) and the boxes of the layouts on that image (yellow) with their mask
outlines (magenta). A header line gives the decision: object or texture, foreground share, share of the
learn-shot defect pixels on the foreground. Pure drawing (OpenCV); reads nothing itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from anogen_data.layout.rle import decode_rle
from anogen_data.records import Layout

PREVIEW_TILES = 4
TILE = 256
HEADER = 22  # px of the text line above the tiles
HEAT = (0, 140, 255)  # the density overlay's colour: azure, seen on red, dark and light parts alike


def _outline(tile: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int]) -> None:
    contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(tile, contours, -1, colour, 1)


def summary_line(stats: dict) -> str:
    """One line of the placement stats (also used by the dataset card)."""
    parts = [f"{stats['kind']}", f"foreground {stats['foreground_fraction']:.0%} of the frame"]
    if stats.get("agreement") is not None:
        parts.append(f"learn-shot defects on it {stats['agreement']:.0%}")
    parts.append(f"placement {stats['placement']}")
    return ", ".join(parts)


def render_preview(
    layouts: Sequence[Layout], stats: dict, loader: Callable[[str], np.ndarray],
    foreground: Callable[[str, tuple[int, int]], np.ndarray],
    density: Callable[[str, str, tuple[int, int]], np.ndarray | None],
) -> np.ndarray:
    """The preview image, uint8 RGB (HEADER + TILE, n * TILE, 3).

    Args:
        layouts: the proposed layouts.
        stats: ``LayoutProposer.placement_stats()``.
        loader: path -> uint8 RGB image.
        foreground: (path, (H, W)) -> uint8 (H, W) estimated foreground, 255 = object.
        density: (defect type, path, (H, W)) -> float (H, W) in [0, 1], or None for uniform placement.
    """
    by_source = Counter(x.source_path for x in layouts)
    sources = [path for path, _ in by_source.most_common(PREVIEW_TILES)]
    tiles = []
    for path in sources:
        image = loader(path)
        h, w = image.shape[:2]
        scale = TILE / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        tile = np.zeros((TILE, TILE, 3), np.uint8)
        view = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        mine = [x for x in layouts if x.source_path == path]
        heat = np.zeros((h, w), np.float32)
        for defect in sorted({x.defect_type for x in mine}):
            d = density(defect, path, (h, w))
            if d is not None:
                heat = np.maximum(heat, d)
        heat = cv2.resize(heat, size, interpolation=cv2.INTER_LINEAR)
        alpha = 0.45 * heat[..., None]
        view = (view.astype(np.float32) * (1 - alpha) + np.array(HEAT, np.float32) * alpha).round().astype(np.uint8)
        _outline(view, cv2.resize(foreground(path, (h, w)), size, interpolation=cv2.INTER_NEAREST), (0, 255, 0))
        for layout in mine:
            x0, y0, x1, y1 = (round(v * scale) for v in layout.bbox_xyxy)
            cv2.rectangle(view, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), (255, 255, 0), 1)
            _outline(view, cv2.resize(decode_rle(layout.mask_rle), size, interpolation=cv2.INTER_NEAREST), (255, 0, 255))
        tile[: size[1], : size[0]] = view
        tiles.append(tile)
    body = np.hstack(tiles) if tiles else np.zeros((TILE, TILE, 3), np.uint8)
    header = np.zeros((HEADER, body.shape[1], 3), np.uint8)
    cv2.putText(header, summary_line(stats)[: body.shape[1] // 7], (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([header, body])
