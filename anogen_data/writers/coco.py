"""COCO instance files of a version (Lin et al., "Microsoft COCO", ECCV 2014), streamed to disk.

``coco/instances_<split>.json``: one image entry per image (good images with no annotations), one
annotation per connected defect instance (8-connectivity, ``cv2.connectedComponentsWithStats``) with
``segmentation`` as a pycocotools RLE whose ``counts`` is a str, ``bbox`` XYWH, ``area``, ``iscrowd: 0``
and ``mask_quality`` ("pixel", or "box" for AnoGen-style weak labels whose mask is the filled box).
``file_name`` is relative to the version folder (the parent of ``coco/``). Categories are the defect
types, ids from 1 in name order.

Image and annotation entries are written as they arrive (annotations spooled to a side file), so memory
does not grow with the number of images.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np
from pycocotools import mask as mask_utils


@dataclass(frozen=True)
class Instance:
    """One connected defect region: ``bbox_xywh`` in pixels, ``area`` in pixels, ``rle`` full-image RLE."""

    bbox_xywh: tuple[int, int, int, int]
    area: int
    rle: dict


def mask_instances(mask: np.ndarray) -> list[Instance]:
    """Split a mask into connected instances.

    Args:
        mask: uint8 (H, W), 255 = defect (any non-zero counts).

    Returns:
        Instances in label order (top-to-bottom scan), each with a pycocotools RLE
        ``{"size": [H, W], "counts": str}`` of that instance only.
    """
    binary = (mask > 0).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    out = []
    for label in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[label])
        rle = mask_utils.encode(np.asfortranarray(labels == label, dtype=np.uint8))
        out.append(Instance((x, y, w, h), area, {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}))
    return out


class CocoSplitWriter:
    """Streams one ``instances_<split>.json``; call ``add`` per image, then ``close(categories)``."""

    def __init__(self, path: Path, info: dict, licenses: list[dict]):
        self.path = Path(path)
        self._spool_path = self.path.with_suffix(".annotations.tmp")
        self._out: TextIO = open(self.path, "w", encoding="utf-8")
        self._spool: TextIO = open(self._spool_path, "w", encoding="utf-8")
        self._out.write('{"info": ' + json.dumps(info, sort_keys=True))
        self._out.write(', "licenses": ' + json.dumps(licenses, sort_keys=True) + ', "images": [')
        self.images = 0
        self.annotations = 0

    def add(self, file_name: str, width: int, height: int, source: str, defect_type: str,
            instances: list[Instance], mask_quality: str | None) -> None:
        """Add one image and its instances (none for good images)."""
        self.images += 1
        image = {"id": self.images, "file_name": file_name, "width": width, "height": height,
                 "license": 1, "source": source}
        self._out.write(("\n" if self.images == 1 else ",\n") + json.dumps(image, sort_keys=True))
        for inst in instances:
            self.annotations += 1
            row = {"id": self.annotations, "image_id": self.images, "defect_type": defect_type,
                   "segmentation": inst.rle, "bbox": list(inst.bbox_xywh), "area": inst.area, "iscrowd": 0,
                   "mask_quality": mask_quality or "pixel"}
            self._spool.write(json.dumps(row, sort_keys=True) + "\n")

    def close(self, categories: list[str]) -> None:
        """Append the spooled annotations (with category ids) and the categories block."""
        ids = {name: i for i, name in enumerate(categories, 1)}
        self._spool.close()
        self._out.write('], "annotations": [')
        with open(self._spool_path, encoding="utf-8") as spool:
            for n, line in enumerate(spool):
                row = json.loads(line)
                row["category_id"] = ids[row.pop("defect_type")]
                self._out.write(("\n" if n == 0 else ",\n") + json.dumps(row, sort_keys=True))
        blocks = [{"id": i, "name": name, "supercategory": "defect"} for name, i in ids.items()]
        self._out.write('], "categories": ' + json.dumps(blocks, sort_keys=True) + "}\n")
        self._out.close()
        self._spool_path.unlink()

    def abort(self) -> None:
        """Close the open files (the atomic version folder removes them)."""
        for fh in (self._out, self._spool):
            if not fh.closed:
                fh.close()


class CocoWriter:
    """One ``CocoSplitWriter`` per split, opened on the split's first image."""

    def __init__(self, folder: Path, info: dict, license_name: str):
        self.folder = Path(folder)
        self.info = info
        self.licenses = [{"id": 1, "name": license_name, "url": ""}]
        self.splits: dict[str, CocoSplitWriter] = {}
        self.categories: set[str] = set()

    def add(self, split: str, file_name: str, width: int, height: int, source: str, defect_type: str,
            instances: list[Instance], mask_quality: str | None) -> None:
        if split not in self.splits:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.splits[split] = CocoSplitWriter(self.folder / f"instances_{split}.json", self.info, self.licenses)
        if defect_type != "good":
            self.categories.add(defect_type)
        self.splits[split].add(file_name, width, height, source, defect_type, instances, mask_quality)

    def close(self) -> dict[str, dict[str, int]]:
        """Finish every file; returns {split: {"images": n, "annotations": n}}."""
        names = sorted(self.categories)
        for writer in self.splits.values():
            writer.close(names)
        return {s: {"images": w.images, "annotations": w.annotations} for s, w in self.splits.items()}

    def abort(self) -> None:
        for writer in self.splits.values():
            writer.abort()
