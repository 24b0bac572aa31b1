"""Test helper: hand-made synthetic records on a demo index (the export and box-label CLI tests share it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_synthetic_records(index: Path, folder: Path, mask: np.ndarray, n: int, backend: str,
                            bbox_xyxy: tuple[int, int, int, int]) -> list:
    """Write n synthetic records (``folder``/records.jsonl + images/ + masks/) made on the index's first n
    train images: ``mask`` (uint8, 255 = defect) marks the inverted pixels. Returns the records."""
    from anogen_data.data.image_io import read_image, write_png
    from anogen_data.records import SynthRecord, read_index, write_records

    entries = [e for e in read_index(index) if e.role == "train"]
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    records = []
    for i in range(n):
        image = read_image(entries[i].path)
        defect = mask[: image.shape[0], : image.shape[1]] > 0
        image[defect] = 255 - image[defect]
        write_png(folder / "images" / f"syn_{i:06d}.png", image)
        write_png(folder / "masks" / f"syn_{i:06d}.png", mask[: image.shape[0], : image.shape[1]])
        records.append(SynthRecord(
            id=f"syn_{i:06d}", category=entries[i].category, defect_type="scratch", backend=backend, seed=i,
            source_path=entries[i].path, image_path=f"images/syn_{i:06d}.png", mask_path=f"masks/syn_{i:06d}.png",
            mask_quality="pixel", bbox_xyxy=bbox_xyxy))
    write_records(folder / "records.jsonl", records)
    return records
