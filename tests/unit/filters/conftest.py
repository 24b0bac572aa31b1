"""Tiny hand-made scenes for the filter tests: a bright textured disk (the object) on a dark background.

``scene(tmp_path)`` writes a good source image, a real learn shot of defect type "spot" (a dark blob
on the disk, with its mask) and an ``index.jsonl``; ``scene.add(id, image, mask)`` writes a synthetic
record made on the source. Images are 64 x 64 uint8 RGB; masks uint8 with 255 = defect.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from anogen_data.data.image_io import write_png
from anogen_data.files import write_jsonl
from anogen_data.records import IndexEntry, SynthRecord, to_row, write_index

SIZE = 64


def disk_image(seed: int) -> np.ndarray:
    """A bright disk of radius 24 at the centre of a dark, slightly noisy background."""
    rng = np.random.default_rng(seed)
    image = np.full((SIZE, SIZE, 3), 30, np.uint8)
    cv2.circle(image, (32, 32), 24, (200, 190, 170), -1)
    noise = rng.integers(-6, 7, image.shape)
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8)


def blob_mask(cx: int, cy: int, r: int = 5) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), np.uint8)
    cv2.circle(mask, (cx, cy), r, 255, -1)
    return mask


def paint(image: np.ndarray, mask: np.ndarray, colour=(60, 40, 30)) -> np.ndarray:
    """The image with the mask's pixels painted a dark brown (the "spot" defect)."""
    out = image.copy()
    out[mask > 127] = colour
    return out


class Scene:
    def __init__(self, root: Path):
        self.root = root
        category = root / "data" / "toy"  # MVTec layout: the index only names images inside it
        for sub in ("train/good", "test/spot", "ground_truth/spot"):
            (category / sub).mkdir(parents=True)
        self.source = category / "train" / "good" / "good.png"
        self.source_image = disk_image(0)
        write_png(self.source, self.source_image)
        self.out = root / "synth"
        (self.out / "images").mkdir(parents=True)
        (self.out / "masks").mkdir()
        entries = [IndexEntry(str(self.source), "train", "good", "good", None, SIZE, SIZE, "train", "toy")]
        for i, (cx, cy) in enumerate([(26, 30), (38, 36)]):
            image, mask = disk_image(10 + i), blob_mask(cx, cy)
            shot, shot_mask = category / "test" / "spot" / f"shot{i}.png", category / "ground_truth" / "spot" / f"shot{i}_mask.png"
            write_png(shot, paint(image, mask))
            write_png(shot_mask, mask)
            entries.append(IndexEntry(str(shot), "test", "anomaly", "spot", str(shot_mask), SIZE, SIZE, "learn", "toy"))
        self.index = root / "index.jsonl"
        write_index(self.index, entries)
        self.records: list[SynthRecord] = []

    blob_mask = staticmethod(blob_mask)
    paint = staticmethod(paint)

    def add(self, id: str, image: np.ndarray, mask: np.ndarray, box=(20, 20, 44, 44)) -> None:
        write_png(self.out / "images" / f"{id}.png", image)
        write_png(self.out / "masks" / f"{id}.png", mask)
        self.records.append(SynthRecord(id, "toy", "spot", "paste", 0, str(self.source), f"images/{id}.png",
                                        f"masks/{id}.png", "pixel", box))
        write_jsonl(self.out / "records.jsonl", (to_row(r) for r in self.records))

    @property
    def records_file(self) -> Path:
        return self.out / "records.jsonl"


@pytest.fixture
def scene(tmp_path) -> Scene:
    return Scene(tmp_path)


@pytest.fixture(scope="module")
def module_scene(tmp_path_factory) -> Scene:
    """A Scene shared by one test module (for expensive fixtures built on it)."""
    return Scene(tmp_path_factory.mktemp("scene"))
