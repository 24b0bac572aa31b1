"""Tiny inputs for the writer tests: real images/masks in MVTec-like folders and synthetic records,
built directly as IndexEntry / SynthRecord objects (no other stage needed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from anogen_data.data.image_io import write_png
from anogen_data.records import IndexEntry, SynthRecord


@dataclass
class Inputs:
    """What the writers take: index rows, synthetic records and the folder their paths are relative to."""

    index: list[IndexEntry]
    records: list[SynthRecord]
    records_dir: Path
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # source path -> mask written


def _two_blobs(height: int, width: int, seed: int) -> np.ndarray:
    """A mask with two separate rectangles (two connected instances), 255 = defect."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((height, width), np.uint8)
    y, x = int(rng.integers(1, height // 2 - 6)), int(rng.integers(1, width // 2 - 6))
    mask[y:y + 5, x:x + 6] = 255
    mask[height // 2 + 2:height // 2 + 7, width // 2 + 3:width // 2 + 6] = 255
    return mask


def build_inputs(root: Path, *, n_train=4, n_test_good=2, defects=("scratch", "dent"), n_learn=1, n_eval=2,
                 n_syn=3, size=(40, 32), box_every=3, category="widget") -> Inputs:
    """Write random images and masks under ``root`` and return the matching rows and records."""
    width, height = size
    rng = np.random.default_rng(1)
    index: list[IndexEntry] = []
    masks: dict[str, np.ndarray] = {}

    def image(path: Path) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_png(path, rng.integers(0, 256, (height, width, 3), np.uint8))
        return str(path)

    def entry(path, split, label, defect, mask_path, role):
        index.append(IndexEntry(path=path, split=split, label=label, defect_type=defect, mask_path=mask_path,
                                width=width, height=height, role=role, category=category))

    for i in range(n_train):
        entry(image(root / "real/train/good" / f"{i:03d}.png"), "train", "good", "good", None, "train")
    for i in range(n_test_good):
        entry(image(root / "real/test/good" / f"{i:03d}.png"), "test", "good", "good", None, "eval")
    for d_num, defect in enumerate(defects):
        for i in range(n_learn + n_eval):
            path = image(root / "real/test" / defect / f"{i:03d}.png")
            mask = _two_blobs(height, width, 10 * d_num + i)
            mask_path = root / "real/ground_truth" / defect / f"{i:03d}_mask.png"
            mask_path.parent.mkdir(parents=True, exist_ok=True)
            write_png(mask_path, mask)
            masks[path] = mask
            entry(path, "test", "anomaly", defect, str(mask_path), "learn" if i < n_learn else "eval")
    records = []
    syn_dir = root / "syn"
    for n in range(n_syn):
        defect = defects[n % len(defects)]
        rid = f"syn_{n:06d}"
        image(syn_dir / "images" / f"{rid}.png")
        mask = _two_blobs(height, width, 100 + n)
        (syn_dir / "masks").mkdir(parents=True, exist_ok=True)
        write_png(syn_dir / "masks" / f"{rid}.png", mask)
        quality = "box" if box_every and n % box_every == box_every - 1 else "pixel"
        records.append(SynthRecord(
            id=rid, category=category, defect_type=defect, backend="perlin", seed=1000 + n,
            source_path=index[n % n_train].path, image_path=f"images/{rid}.png", mask_path=f"masks/{rid}.png",
            mask_quality=quality, bbox_xyxy=(3, 4, 15, 12), recipe={"n": n}))
        masks[rid] = mask
    return Inputs(index, records, syn_dir, masks)


@pytest.fixture
def inputs(tmp_path) -> Inputs:
    """Default tiny inputs: 4 train/good, 2 test/good, 2 defect types x (1 learn + 2 eval), 3 synthetic."""
    return build_inputs(tmp_path / "src")


@dataclass
class Written:
    """A version written once per session from ``build_inputs`` (treat as read-only)."""

    inputs: Inputs
    folder: Path


@pytest.fixture(scope="session")
def written(tmp_path_factory) -> Written:
    """One version with real + synthetic images (one synthetic record in three is a box label)."""
    from anogen_data.writers.version import write_version

    root = tmp_path_factory.mktemp("written")
    inputs = build_inputs(root / "src")
    scores = {r.id: {"keep": True, "reasons": [], "scores": {"sharpness": 1.0}} for r in inputs.records}
    folder = write_version(root / "out", "widget", category="widget", index=inputs.index, records=inputs.records,
                           records_dir=inputs.records_dir, scores=scores)
    return Written(inputs, folder)
