"""The contact sheet of a version: a grid of sample thumbnails with the mask outline drawn in red.

Which images appear is decided from metadata before any pixel is read (the first ``per_group`` images
of each (split, source, defect type) group, up to ``max_cells``), and only small thumbnails are kept, so
memory stays bounded whatever the number of images.
"""

from __future__ import annotations

from collections import Counter

import cv2
import numpy as np

OUTLINE_RGB = (255, 0, 0)
CAPTION_HEIGHT = 14


class ContactSheet:
    """Collects thumbnails (``thumb`` px squares, RGB uint8) and renders the grid.

    Captions have ``caption_lines`` lines ("\n" separates them), each cut to 22 characters (the width of a tile).
    """

    def __init__(self, *, per_group: int = 4, max_cells: int = 48, thumb: int = 128, columns: int = 8,
                 caption_lines: int = 1):
        self.per_group = per_group
        self.caption_lines = caption_lines
        self.max_cells = max_cells
        self.thumb = thumb
        self.columns = columns
        self._taken: Counter[tuple[str, ...]] = Counter()
        self._reserved = 0
        self.cells: list[tuple[int, np.ndarray, str]] = []

    def wants(self, *group: str) -> bool:
        """Reserve a cell for the next image of ``group`` (e.g. split, source, defect type) if there is room."""
        key = tuple(group)
        if self._taken[key] >= self.per_group or self._reserved >= self.max_cells:
            return False
        self._taken[key] += 1
        self._reserved += 1
        return True

    def thumbnail(self, image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """A ``thumb`` x ``thumb`` RGB thumbnail (letterboxed) with the mask outline in red.

        Args:
            image: uint8 (H, W, 3) RGB.
            mask: uint8 (H, W), 255 = defect, or None for good images.
        """
        h, w = image.shape[:2]
        scale = self.thumb / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        if mask is not None:
            small_mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
            contours, _ = cv2.findContours((small_mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            small = np.ascontiguousarray(small)
            cv2.drawContours(small, contours, -1, OUTLINE_RGB, 1)
        tile = np.zeros((self.thumb, self.thumb, 3), dtype=np.uint8)
        y0, x0 = (self.thumb - small.shape[0]) // 2, (self.thumb - small.shape[1]) // 2
        tile[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
        return tile

    def add(self, order: int, tile: np.ndarray, caption: str) -> None:
        """Keep a thumbnail made by ``thumbnail``; ``order`` sorts the cells."""
        self.cells.append((order, tile, caption))

    def render(self) -> np.ndarray:
        """The grid as uint8 (rows * (thumb + caption_lines * CAPTION_HEIGHT), columns * thumb, 3) RGB; one black
        cell when empty."""
        cells = sorted(self.cells, key=lambda c: c[0]) or [(0, np.zeros((self.thumb, self.thumb, 3), np.uint8), "empty")]
        columns = min(self.columns, len(cells))
        rows = -(-len(cells) // columns)
        cell_h = self.thumb + CAPTION_HEIGHT * self.caption_lines
        sheet = np.full((rows * cell_h, columns * self.thumb, 3), 255, dtype=np.uint8)
        for n, (_, tile, caption) in enumerate(cells):
            y, x = (n // columns) * cell_h, (n % columns) * self.thumb
            sheet[y:y + self.thumb, x:x + self.thumb] = tile
            for line_no, line in enumerate(caption.split("\n")[:self.caption_lines]):
                cv2.putText(sheet, line[:22], (x + 2, y + self.thumb + 10 + line_no * CAPTION_HEIGHT),
                            cv2.FONT_HERSHEY_PLAIN, 0.7, (0, 0, 0), 1, cv2.LINE_AA)
        return sheet
