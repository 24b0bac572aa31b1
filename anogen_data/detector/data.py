"""Detector training data: read a dataset version, letterbox images, and mix good/synthetic samples.

Mixes (``recipes.Recipe.mix``): sample ``i`` of an epoch is of kind ``mix[i % len(mix)]``: "clean" (a
good image), "perlin" (an on-the-fly anomaly: DRAEM Perlin on a texture, or CutPaste) or "generated" (a
version anomaly; on-the-fly when the version has none, which makes the recipe's own baseline). The
sample's image is still drawn at random from (seed, epoch, i), so no shuffling is needed and every batch
of a multiple of ``len(mix)`` samples holds the recipe's exact shares.

Non-square images (KolektorSDD ~500x1250) are never squashed: each is resized keeping its aspect ratio
into a fixed canvas (long side ``image_size``, short side rounded up to a multiple of 32) and padded.

A sample is a dict of tensors: ``image``/``clean`` (3, H, W) float in [0, 1]; ``target`` (1, H, W)
in {0, 1} (1 = defect; the box for box-labelled samples); ``is_box``, ``has_clean`` bool scalars;
``clean_id`` int scalar: the un-augmented clean image's id (``DetectorTrainSet.clean_ids``), -1 if none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from anogen_data.data.image_io import read_image, read_mask
from anogen_data.detector import augment
from anogen_data.errors import AnogenError


@dataclass(frozen=True)
class TrainItem:
    """One training image. ``mask`` is None for good images; ``mask_quality`` "box" marks a weak label
    (its mask file is the filled box); ``clean`` is the good image it was made from, when known."""

    image: str
    mask: str | None = None
    mask_quality: str = "pixel"
    clean: str | None = None


def canvas_for(width: int, height: int, image_size: int) -> tuple[int, int]:
    """(H, W) of the letterbox canvas: long side ``image_size``, short side ceil to a multiple of 32."""
    long_side = max(width, height)
    short = max(32, math.ceil(image_size * min(width, height) / long_side / 32) * 32)
    return (image_size, short) if height >= width else (short, image_size)


def letterbox(array: np.ndarray, canvas: tuple[int, int], nearest: bool = False) -> tuple[np.ndarray, tuple[int, int]]:
    """Resize keeping the aspect ratio to fit ``canvas`` (H, W), pad bottom/right with zeros.

    Returns (array of the canvas size, (content_h, content_w)): the content sits at the top-left.
    """
    h, w = array.shape[:2]
    scale = min(canvas[0] / h, canvas[1] / w)
    ch, cw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    resized = cv2.resize(array, (cw, ch), interpolation=interp)
    out = np.zeros((canvas[0], canvas[1]) + array.shape[2:], dtype=array.dtype)
    out[:ch, :cw] = resized
    return out, (ch, cw)


def _coco_quality(version: Path) -> dict[str, str]:
    """Resolved image path -> "box" or "pixel" from ``coco/instances_train.json`` ({} if absent).

    An image is box-labelled when any of its annotations says ``"mask_quality": "box"`` (AnoGen weak label).
    """
    path = version / "coco" / "instances_train.json"
    if not path.is_file():
        return {}
    from anogen_data.paths import inside
    from anogen_data.schemas import CocoFile, read_json_model

    coco = read_json_model(path, CocoFile)
    files = {img.id: str(inside(version, img.file_name, f"{path}: images[{i}].file_name"))
             for i, img in enumerate(coco.images)}
    out: dict[str, str] = {}
    for ann in coco.annotations:
        file = files.get(ann.image_id)
        if file is not None and (ann.mask_quality == "box" or out.get(file) == "box"):
            out[file] = "box"
        elif file is not None:
            out[file] = "pixel"
    return out


def _clean_sources(version: Path) -> dict[str, str]:
    """Resolved synthetic image path -> its clean source image, from the version's ``records.jsonl``."""
    path = version / "records.jsonl"
    if not path.is_file():
        return {}
    from anogen_data.records import read_records

    return {str((version / r.image_path).resolve()): r.source_path for r in read_records(path)
            if Path(r.source_path).is_file()}


def read_version(
    version: Path, category: str | None = None, real_shots: bool = False
) -> tuple[str, list[TrainItem], list[TrainItem]]:
    """Read a version's ``mvtec/<category>/train/good`` and ``synthetic/<category>/`` into (category, good
    items, training anomaly items).

    Training anomalies are the synthetic ``synthetic/<category>/images/<defect>/syn_*`` images, plus the
    real learn shots ``real_*`` beside them when ``real_shots`` (a version written before the
    ``synthetic/`` tree, with them in ``mvtec/<category>/train/<defect>/``, reads the same). Never
    reads ``test/``.

    Raises:
        AnogenError: no ``mvtec/`` folder, several categories and none chosen, or no train/good images.
    """
    from anogen_data.data.mvtec import list_categories, load_category

    version = Path(version)
    root = version / "mvtec"
    if not root.is_dir():
        raise AnogenError(f"{version} has no mvtec/ folder; pass a dataset version folder (datasets/NAME/vN)")
    if category is None:
        found = list_categories(root)
        if len(found) != 1:
            raise AnogenError(f"{root} holds categories {found}; pass --category to choose one")
        category = found[0]
    samples = [s for s in load_category(version, category) if s.split == "train"]
    quality, cleans = _coco_quality(version), _clean_sources(version)
    good = [TrainItem(s.path) for s in samples if s.label == "good"]
    anomalies = []
    for s in samples:
        stem = Path(s.path).stem
        if s.label == "anomaly" and (stem.startswith("syn_") or (real_shots and stem.startswith("real_"))):
            key = str(Path(s.path).resolve())
            anomalies.append(TrainItem(s.path, s.mask_path, quality.get(key, "pixel"), cleans.get(key)))
    return category, good, anomalies


class DetectorTrainSet(torch.utils.data.Dataset):
    """Letterboxed, cached training images mixed per ``mix``; sample ``i`` of epoch ``e`` is a pure
    function of (seed, e, i), so any DataLoader order gives the same bytes.

    Args:
        good, anomalies: items from :func:`read_version` (``anomalies`` may be empty).
        canvas: (H, W) from :func:`canvas_for`; mix: the recipe's cycle of sample kinds (see module doc);
        synthesis: on-the-fly kind ("perlin" or "cutpaste") for "perlin" samples and for "generated" ones
            when there is no version anomaly; length: samples per epoch; augment: random flips of version
            anomalies (few real shots); textures: image files Perlin anomalies are filled from (DRAEM's
            DTD); None = the category's good images.
    """

    def __init__(self, good, anomalies, canvas, mix=("clean", "generated"), synthesis="perlin", length=64, seed=0,
                 augment=False, textures=None):
        if not good:
            raise AnogenError("no train/good images to train on; the version (or index) has none")
        unknown = set(mix) - {"clean", "perlin", "generated"}
        if not mix or unknown:
            raise ValueError(f"mix {mix!r}: kinds must be clean, perlin or generated")
        self.good, self.anomalies, self.canvas = list(good), list(anomalies), tuple(canvas)
        self.mix, self.synthesis, self.length, self.seed, self.augment = tuple(mix), synthesis, length, seed, augment
        self.textures = list(textures) if textures else None
        # every un-augmented clean image gets a fixed id, so the frozen teacher's maps of it can be cached
        cleans = [g.image for g in self.good] + [a.clean for a in self.anomalies if a.clean]
        self.clean_ids = {path: k for k, path in enumerate(dict.fromkeys(cleans))}
        self.epoch = 0
        self._cache: dict[tuple[str, bool], np.ndarray] = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def _load(self, path: str, is_mask: bool = False) -> np.ndarray:
        key = (path, is_mask)
        if key not in self._cache:
            array = read_mask(Path(path)) if is_mask else read_image(Path(path))
            self._cache[key] = letterbox(array, self.canvas, nearest=is_mask)[0]
        return self._cache[key]

    def _float(self, path: str) -> np.ndarray:
        return self._load(path).astype(np.float32) / 255.0

    def _version_anomaly(self, rng, fallback_clean: np.ndarray):
        item = self.anomalies[int(rng.integers(len(self.anomalies)))]
        image = self._float(item.image)
        mask = (self._load(item.mask, is_mask=True) > 127).astype(np.float32)
        clean = self._float(item.clean) if item.clean else fallback_clean
        is_box = item.mask_quality == "box"
        if is_box:
            mask = self._box_target(mask)
        clean_path = item.clean
        if self.augment:
            image, mask, clean = augment.flip_rotate([image, mask, clean], rng)
            clean_path = None  # possibly flipped: not the cached clean image
        return image, mask, clean, is_box, item.clean is not None, clean_path

    @staticmethod
    def _box_target(mask: np.ndarray) -> np.ndarray:
        """The weak label: the filled bounding box of each 8-connected defect of the mask, (H, W) in {0, 1}.

        One box per defect, as AnoGen labels each instance: one box around all of them would call the
        normal surface between distant pieces (a grid's bent wires lie far apart) defect, up to 27 % of a
        grid image against 1.5 % for per-defect boxes. A filled box (an exported box label) stays itself.
        """
        box = np.zeros_like(mask)
        count, _, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
        for x, y, w, h, _ in stats[1:count]:
            box[y : y + h, x : x + w] = 1
        return box

    def _on_the_fly(self, image: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
        if self.synthesis == "cutpaste":
            return augment.cutpaste_anomaly(image, rng)
        if self.textures:  # DRAEM: a texture image squashed to the canvas, read each time (DTD is 5,640 files)
            path = self.textures[int(rng.integers(len(self.textures)))]
            array = read_image(Path(path))
            texture = cv2.resize(array, self.canvas[::-1], interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        else:
            texture = self._float(self.good[int(rng.integers(len(self.good)))].image)
        return augment.perlin_anomaly(image, texture, rng)

    def kind(self, i: int) -> str:
        """The sample kind of index ``i``: "clean", "perlin" or "generated" (before the fallback)."""
        return self.mix[i % len(self.mix)]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        clean_path = self.good[int(rng.integers(len(self.good)))].image
        clean = self._float(clean_path)
        image, target, is_box, has_clean = clean, np.zeros(self.canvas, np.float32), False, True
        kind = self.kind(i)
        if kind == "perlin" or (kind == "generated" and not self.anomalies):
            image, target = self._on_the_fly(clean, rng)
        elif kind == "generated":
            image, target, clean, is_box, has_clean, clean_path = self._version_anomaly(rng, clean)

        def chw(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))

        return {
            "image": chw(image), "clean": chw(clean), "target": torch.from_numpy(np.ascontiguousarray(target))[None],
            "is_box": torch.tensor(is_box), "has_clean": torch.tensor(has_clean),
            "clean_id": torch.tensor(self.clean_ids.get(clean_path, -1) if clean_path else -1),
        }
