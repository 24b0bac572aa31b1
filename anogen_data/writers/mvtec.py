"""File names and writing of the MVTec AD tree (Bergmann et al., "MVTec AD", CVPR 2019) of a version.

Layout under ``mvtec/<category>/`` (every image a PNG; masks uint8 (H, W) {0, 255}, 255 = defect)::

    train/good/NNN.png                     good images kept for training (index role "train")
    train/<defect>/real_NNN.png            real learn shots (index role "learn"), optional
    train/<defect>/syn_NNNNNN.png          synthetic anomalies (training data)
    test/good/NNN.png                      held-out good images (index role "eval")
    test/<defect>/NNN.png                  held-out real anomalies (index role "eval")
    ground_truth/<defect>/<stem>_mask.png  one mask per anomaly, stems distinct across the three kinds

A reader that knows only MVTec AD sees ``train/good`` and ``test/`` as usual: the test split holds only
real images. ``anogen_data.data.mvtec.load_category`` re-reads the whole tree, synthetic part included.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

GOOD = "good"


class MvtecNamer:
    """Hands out the next free relative paths (from the version folder) for each kind of image.

    Numbers count from 0 per folder in the order images arrive, so the same inputs give the same names.
    """

    def __init__(self, category: str):
        self.base = f"mvtec/{category}"
        self._counts: Counter[tuple[str, str, str]] = Counter()

    def _next(self, split: str, defect: str, kind: str) -> int:
        key = (split, defect, kind)
        number = self._counts[key]
        self._counts[key] += 1
        return number

    def good(self, split: str) -> tuple[str, None]:
        """``(image path, None)`` for a good image in ``split`` ("train" or "test")."""
        return f"{self.base}/{split}/{GOOD}/{self._next(split, GOOD, 'real'):03d}.png", None

    def anomaly(self, split: str, defect: str, source: str) -> tuple[str, str]:
        """``(image path, mask path)`` for an anomaly.

        Args:
            split: "test" for held-out real anomalies, "train" for learn shots and synthetic ones.
            defect: defect type (folder name).
            source: "real" or "synthetic".
        """
        number = self._next(split, defect, source)
        if source == "synthetic":
            stem = f"syn_{number:06d}"
        elif split == "train":
            stem = f"real_{number:03d}"
        else:
            stem = f"{number:03d}"
        return f"{self.base}/{split}/{defect}/{stem}.png", f"{self.base}/ground_truth/{defect}/{stem}_mask.png"


def write_file(version_dir: Path, relative: str, data: bytes) -> None:
    """Write encoded PNG bytes to ``version_dir/relative``, creating folders as needed."""
    path = Path(version_dir) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
