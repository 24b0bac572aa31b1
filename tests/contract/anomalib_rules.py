"""anomalib's two folder readers, re-implemented from their source, to check our versions against them.

anomalib cannot be imported here (torchvision's ops do not load with the CPU torch), so this file
restates, from reading open-edge-platform/anomalib (v2, ``src/anomalib/data/``), what its readers do:

``MVTecAD`` (``datasets/image/mvtecad.py``, ``make_mvtec_ad_dataset``), given ``ROOT/<category>``:
  1. every file under it, at any depth, whose suffix is exactly ``.png`` or ``.PNG``, becomes a row
     ``(split, label, name)`` = its last three path parts (so a file at another depth is mislabelled);
  2. ``label == "good"`` -> normal (0), anything else -> abnormal (1), in ``train/`` too;
  3. rows with ``split == "ground_truth"`` are masks; masks and the other rows are each sorted by
     their path string;
  4. the sorted masks are assigned *by position* to the sorted rows with split "test" and label
     abnormal (pandas raises ``ValueError`` when the counts differ);
  5. every abnormal row (train ones included, which have no mask: ``Path(None)`` is a ``TypeError``)
     must satisfy ``Path(image).stem in Path(mask).stem``, else ``MisMatchError``.

``Folder`` (``datasets/image/folder.py``, ``make_folder_dataset``; ``utils/path.py``,
``_prepare_files_labels``), given ``root`` and the ``normal_dir``, ``abnormal_dir``,
``normal_test_dir`` and ``mask_dir`` folders (relative to ``root``):
  1. each folder is globbed recursively (``**/*``); a file counts when its lower-cased suffix is in
     the lower-cased extensions (default torchvision's ``IMG_EXTENSIONS``); a folder with no such file
     raises ``RuntimeError``;
  2. all rows of all folders are sorted together by path string; normal and normal_test -> 0,
     abnormal -> 1;
  3. when both mask and abnormal folders are given, the i-th mask (in that order) goes to the i-th
     abnormal row (extra abnormal rows keep ``""``); every abnormal row with a mask must satisfy
     ``Path(image).stem in Path(mask).stem``, else ``MisMatchError``;
  4. the mask rows are dropped; normal rows are split "train", every other row split "test".

Only what decides labels and masks is restated (no dataframes, no transforms). ``compare`` then
checks that every sample got the label and the mask we mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

MVTEC_EXTENSIONS = (".png", ".PNG")  # mvtecad.py IMG_EXTENSIONS: case-sensitive suffix match
TORCHVISION_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
NORMAL, ABNORMAL = 0, 1


class AnomalibRuleError(Exception):
    """What anomalib's reader would raise; the message starts with the exception anomalib raises."""


@dataclass(frozen=True)
class AnomalibSample:
    """One row of anomalib's sample table: absolute image path, split ("train"/"test"),
    label_index (0 normal, 1 abnormal) and the paired mask path ("" or None when it has none)."""

    image_path: str
    split: str
    label_index: int
    mask_path: str | None


@dataclass(frozen=True, eq=False)
class Expected:
    """What we mean a sample to be: its label and, for anomalies, the mask file we wrote for it and,
    when known from another source (the version's HF rows), its pixels (uint8 (H, W), 255 = defect)."""

    label_index: int
    mask_path: str | None = None
    mask: np.ndarray | None = None


def mvtec_ad_samples(root: Path, category: str, split: str | None = None) -> list[AnomalibSample]:
    """``MVTecAD(root=root, category=category)``'s sample table (see the module docstring).

    Raises:
        AnomalibRuleError: where anomalib would raise (no images, mask count or name mismatch).
    """
    base = Path(root) / category
    if not base.exists():
        raise AnomalibRuleError(f"FileNotFoundError: Path does not exist: {base}")
    rows = [(*f.parts[-3:],) for f in base.glob("**/*") if f.suffix in MVTEC_EXTENSIONS]
    if not rows:
        raise AnomalibRuleError(f"RuntimeError: Found 0 images in {base}")
    table = [(f"{base}/{s}/{label}/{name}", s, label) for s, label, name in rows]
    masks = sorted(path for path, s, _ in table if s == "ground_truth")
    samples = sorted((path, s, NORMAL if label == "good" else ABNORMAL) for path, s, label in table if s != "ground_truth")
    targets = [i for i, (_, s, label) in enumerate(samples) if s == "test" and label == ABNORMAL]
    if len(masks) != len(targets):
        raise AnomalibRuleError(
            f"ValueError: {len(masks)} masks in ground_truth/ for {len(targets)} abnormal test images "
            "(anomalib assigns masks by position)"
        )
    mask_of = dict(zip(targets, masks))
    out = [AnomalibSample(path, s, label, mask_of.get(i)) for i, (path, s, label) in enumerate(samples)]
    for sample in out:
        if sample.label_index != ABNORMAL:
            continue
        if sample.mask_path is None:
            raise AnomalibRuleError(
                f"TypeError: abnormal {sample.split} image {sample.image_path} has no mask (Path(None)); "
                "MVTecAD gives masks to test images only"
            )
        if Path(sample.image_path).stem not in Path(sample.mask_path).stem:
            raise AnomalibRuleError(
                f"MisMatchError: image {sample.image_path} was paired with mask {sample.mask_path}"
            )
    return [s for s in out if split is None or s.split == split]


def _folder_files(root: Path, folder: str, kind: str, extensions: tuple[str, ...]) -> list[str]:
    path = (Path(root) / folder).resolve()
    if not path.exists():
        raise AnomalibRuleError(f"FileNotFoundError: Path does not exist: {path}")
    lower = tuple(e.lower() for e in extensions)
    files = [str(f) for f in path.glob("**/*") if f.suffix.lower() in lower and not f.is_dir()]
    if not files:
        raise AnomalibRuleError(f"RuntimeError: Found 0 {kind} images in {path} with extensions {lower}")
    return files


def folder_samples(
    root: Path,
    normal_dir: str,
    abnormal_dir: str | None = None,
    normal_test_dir: str | None = None,
    mask_dir: str | None = None,
    extensions: tuple[str, ...] | None = None,
) -> list[AnomalibSample]:
    """``Folder(root=..., normal_dir=..., abnormal_dir=..., normal_test_dir=..., mask_dir=...)``'s table
    (train and test splits together; see the module docstring).

    Raises:
        AnomalibRuleError: where anomalib would raise (missing or empty folder, name mismatch).
    """
    extensions = extensions or TORCHVISION_EXTENSIONS
    rows: list[tuple[str, str]] = []
    for kind, folder in (("normal", normal_dir), ("abnormal", abnormal_dir), ("normal_test", normal_test_dir),
                         ("mask_dir", mask_dir)):
        if folder is not None:
            rows += [(f, kind) for f in _folder_files(root, folder, kind, extensions)]
    rows.sort()
    masks: dict[str, str] = {}
    if abnormal_dir is not None and mask_dir is not None:
        abnormal = [path for path, kind in rows if kind == "abnormal"]
        masks = dict(zip(abnormal, [path for path, kind in rows if kind == "mask_dir"]))
        for image, mask in masks.items():
            if Path(image).stem not in Path(mask).stem:
                raise AnomalibRuleError(f"MisMatchError: image {image} was paired with mask {mask}")
    return [
        AnomalibSample(path, "train" if kind == "normal" else "test", ABNORMAL if kind == "abnormal" else NORMAL,
                       masks.get(path, ""))
        for path, kind in rows if kind != "mask_dir"
    ]


def _read_mask(path: str) -> np.ndarray:
    from anogen_data.data.image_io import read_mask

    return read_mask(Path(path))


def compare(samples: list[AnomalibSample], expected: dict[str, Expected]) -> list[str]:
    """Problems (empty when none): a sample we did not write, one anomalib skipped, a wrong label, a normal
    sample with a mask, an anomaly without one or with another file's mask (by path, and by pixels where
    ``Expected.mask`` is given: the mask file anomalib paired must decode to it)."""
    problems = []
    seen = {s.image_path: s for s in samples}
    for path in sorted(set(expected) - set(seen)):
        problems.append(f"{path}: not read by anomalib")
    for path in sorted(set(seen) - set(expected)):
        problems.append(f"{path}: read by anomalib but not one of our samples")
    for path, sample in sorted(seen.items()):
        want = expected.get(path)
        if want is None:
            continue
        if sample.label_index != want.label_index:
            problems.append(f"{path}: label {sample.label_index}, we mean {want.label_index}")
        elif want.label_index == NORMAL and sample.mask_path:
            problems.append(f"{path}: normal image paired with mask {sample.mask_path}")
        elif want.label_index == ABNORMAL and not sample.mask_path:
            problems.append(f"{path}: anomaly without a mask")
        elif want.label_index == ABNORMAL and Path(sample.mask_path).resolve() != Path(want.mask_path).resolve():
            problems.append(f"{path}: paired with {sample.mask_path}, we mean {want.mask_path}")
        elif want.label_index == ABNORMAL and want.mask is not None and not np.array_equal(
                _read_mask(sample.mask_path), want.mask):
            problems.append(f"{path}: its mask's pixels differ from ours")
    return problems
