"""File names and writing of a version's two image trees: a strict MVTec AD tree (Bergmann et al.,
"MVTec AD", CVPR 2019) and a separate folder tree of training anomalies.

``mvtec/<category>/`` holds exactly what MVTec AD holds, so anomalib's ``MVTecAD`` reader (which labels
every folder but ``good`` abnormal, in ``train/`` too, and pairs the sorted ``ground_truth`` masks by
position with the sorted *test* anomalies) reads it as the real benchmark::

    train/good/NNN.png                     good images kept for training (index role "train")
    test/good/NNN.png                      held-out good images (index role "eval")
    test/<defect>/NNN.png                  held-out real anomalies (index role "eval")
    ground_truth/<defect>/NNN_mask.png     one mask per test anomaly, nothing else

Training anomalies live beside it, in the layout anomalib's ``Folder`` reads as abnormal with masks
(``abnormal_dir="synthetic/<category>/images"``, ``mask_dir="synthetic/<category>/masks"``; both are
globbed recursively and paired by sorted position, so a mask has its image's file name)::

    synthetic/<category>/images/<defect>/real_NNN.png     real learn shots (index role "learn"), optional
    synthetic/<category>/images/<defect>/syn_NNNNNN.png   synthetic anomalies
    synthetic/<category>/masks/<defect>/<same name>.png   their masks

Numbers are fixed width, so no stem is a prefix of another and image and mask files sort alike.
Every image is a PNG; masks uint8 (H, W) {0, 255}, 255 = defect.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from anogen_data.errors import AnogenError

GOOD = "good"
MVTEC = "mvtec"
SYNTHETIC = "synthetic"
_WIDTH = {"real": 3, "synthetic": 6}  # digits; MVTec AD has at most ~100 anomalies per defect type


class MvtecNamer:
    """Hands out the next free relative paths (from the version folder) for each kind of image.

    Numbers count from 0 per folder in the order images arrive, so the same inputs give the same names.
    """

    def __init__(self, category: str):
        self.base = f"{MVTEC}/{category}"
        self.training = f"{SYNTHETIC}/{category}"
        self._counts: Counter[tuple[str, str, str]] = Counter()

    def _next(self, split: str, defect: str, kind: str) -> int:
        key = (split, defect, kind)
        number = self._counts[key]
        self._counts[key] += 1
        width = _WIDTH[kind]
        if number >= 10**width:  # a wider number would sort before its neighbours and break the pairing
            raise AnogenError(
                f"more than {10**width} {kind} images in {split}/{defect}; one version holds at most that many"
            )
        return number

    def good(self, split: str) -> tuple[str, None]:
        """``(image path, None)`` for a good image in ``split`` ("train" or "test")."""
        return f"{self.base}/{split}/{GOOD}/{self._next(split, GOOD, 'real'):03d}.png", None

    def anomaly(self, split: str, defect: str, source: str) -> tuple[str, str]:
        """``(image path, mask path)`` for an anomaly.

        Args:
            split: "test" for held-out real anomalies (MVTec tree), "train" for learn shots and synthetic
                ones (the ``synthetic/`` tree).
            defect: defect type (folder name).
            source: "real" or "synthetic".
        """
        number = self._next(split, defect, source)
        if split == "test":
            if source != "real":
                raise AnogenError(f"a synthetic {defect} image cannot go to the test split; it holds real images only")
            stem = f"{number:03d}"
            return f"{self.base}/test/{defect}/{stem}.png", f"{self.base}/ground_truth/{defect}/{stem}_mask.png"
        name = f"syn_{number:06d}.png" if source == "synthetic" else f"real_{number:03d}.png"
        return f"{self.training}/images/{defect}/{name}", f"{self.training}/masks/{defect}/{name}"


def write_file(version_dir: Path, relative: str, data: bytes) -> None:
    """Write encoded PNG bytes to ``version_dir/relative``, creating folders as needed."""
    path = Path(version_dir) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def mask_of(image_rel: str) -> str:
    """The mask path of an anomaly image path handed out by ``MvtecNamer`` (either tree).

    >>> mask_of("mvtec/c/test/dent/000.png"), mask_of("synthetic/c/images/dent/syn_000000.png")
    ('mvtec/c/ground_truth/dent/000_mask.png', 'synthetic/c/masks/dent/syn_000000.png')
    """
    parts = image_rel.split("/")
    if parts[0] == MVTEC and len(parts) == 5 and parts[2] == "test":
        return "/".join([*parts[:2], "ground_truth", parts[3], parts[4][: -len(".png")] + "_mask.png"])
    if parts[0] == SYNTHETIC and len(parts) == 5 and parts[2] == "images":
        return "/".join([*parts[:2], "masks", *parts[3:]])
    raise ValueError(f"{image_rel} is not an anomaly image path of a version")


def split_files(version_dir: Path, category: str, split: str) -> list[Path]:
    """Every image file of ``split`` in a version: ``mvtec/<c>/<split>/``, plus ``synthetic/<c>/images/``
    for "train" (sorted)."""
    version_dir = Path(version_dir)
    files = list((version_dir / MVTEC / category / split).rglob("*.png"))
    if split == "train":
        files += (version_dir / SYNTHETIC / category / "images").rglob("*.png")
    return sorted(files)
