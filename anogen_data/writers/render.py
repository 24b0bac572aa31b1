"""One image of a dataset version, decoded once: mask, connected instances, PNG bytes, thumbnail.

Masks are uint8 (H, W) {0, 255}, 255 = defect; for AnoGen weak labels (Gui et al., ECCV 2024,
``mask_quality == "box"``) the ground truth is the filled box. 8-bit RGB PNG images and 8-bit grey
{0, 255} PNG masks are copied byte for byte (same pixels, no re-encode); anything else (JPEG, grey or
16-bit images, anti-aliased masks) is encoded as PNG. Pure functions: safe to run in worker threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from anogen_data.config import ExportConfig
from anogen_data.data.image_io import encode_png, read_image, read_mask
from anogen_data.errors import AnogenError
from anogen_data.writers.coco import Instance, mask_instances
from anogen_data.writers.contact_sheet import ContactSheet
from anogen_data.writers.plan import ExportItem


@dataclass
class Rendered:
    """One item after decoding: PNG bytes, size, instances and (maybe) a contact-sheet thumbnail."""

    item: ExportItem
    width: int
    height: int
    image_png: bytes
    mask_png: bytes | None
    instances: list[Instance]
    thumbnail: np.ndarray | None


def item_mask(item: ExportItem, height: int, width: int) -> np.ndarray | None:
    """The ground-truth mask of an item: uint8 (H, W) {0, 255}, the filled box for box labels, None if good."""
    if item.label == "good":
        return None
    if item.mask_quality == "box":
        x0, y0, x1, y1 = (int(v) for v in item.bbox_xyxy)
        mask = np.zeros((height, width), dtype=np.uint8)
        mask[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = 255
        return mask
    mask = read_mask(item.mask_src)
    if mask.shape != (height, width):
        raise AnogenError(
            f"{item.mask_src} is {mask.shape[1]}x{mask.shape[0]} but its image {item.image_src} is "
            f"{width}x{height}; masks must have their image's size"
        )
    return mask


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_kind(data: bytes) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's IHDR chunk, or None when ``data`` is not a PNG."""
    if len(data) < 26 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    return data[24], data[25]


def image_png(path: Path, image: np.ndarray, compression: int, copy_png: bool) -> bytes:
    """PNG bytes for an image: the source file itself when it is an 8-bit RGB PNG (and ``copy_png``),
    else ``image`` (uint8 (H, W, 3) RGB) encoded."""
    if copy_png:
        raw = Path(path).read_bytes()
        if png_kind(raw) == (8, 2):
            return raw
    return encode_png(image, compression)


def mask_png(item: ExportItem, mask: np.ndarray, compression: int, copy_png: bool) -> bytes:
    """PNG bytes for a mask: the source file when it is an 8-bit grey PNG already in {0, 255}, else encoded."""
    if copy_png and item.mask_quality == "pixel":
        raw = Path(item.mask_src).read_bytes()
        if png_kind(raw) == (8, 0):
            decoded = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
            if decoded is not None and np.array_equal(decoded, mask):
                return raw
    return encode_png(mask, compression)


def render_item(item: ExportItem, cfg: ExportConfig, sheet: ContactSheet | None) -> Rendered:
    """Decode, build the mask, find instances, get PNG bytes (and a thumbnail when ``sheet`` is given)."""
    image = read_image(item.image_src)
    height, width = image.shape[:2]
    mask = item_mask(item, height, width)
    instances = mask_instances(mask) if mask is not None else []
    thumbnail = sheet.thumbnail(image, mask) if sheet is not None else None
    return Rendered(
        item, width, height, image_png(item.image_src, image, cfg.png_compression, cfg.copy_png),
        mask_png(item, mask, cfg.png_compression, cfg.copy_png) if mask is not None else None, instances, thumbnail,
    )
