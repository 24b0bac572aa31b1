"""Mask <-> COCO RLE conversion and box helpers for layouts (Lin et al., ECCV 2014 COCO format).

Masks are uint8 (H, W) with 255 = defect. RLE is the pycocotools dict ``{"size": [H, W], "counts": str}``
(counts decoded to ``str`` so that it is JSON-able). Boxes are XYXY (x1/y1 exclusive) inside the
package; COCO files store XYWH.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils


def encode_rle(mask: np.ndarray) -> dict:
    """COCO RLE of a uint8 (H, W) mask (non-zero = defect), with ``counts`` as str."""
    rle = mask_utils.encode(np.asfortranarray((mask > 0).astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: dict) -> np.ndarray:
    """The mask of a COCO RLE dict: uint8 (H, W) in {0, 255}."""
    rle = dict(rle)
    if isinstance(rle.get("counts"), str):
        rle["counts"] = rle["counts"].encode("ascii")
    return mask_utils.decode(rle).astype(np.uint8) * 255


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """XYXY box (x1/y1 exclusive) of the non-zero pixels, or None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def xyxy_to_xywh(box: tuple[int, int, int, int]) -> list[int]:
    """COCO XYWH from an XYXY box."""
    x0, y0, x1, y1 = box
    return [int(x0), int(y0), int(x1 - x0), int(y1 - y0)]
