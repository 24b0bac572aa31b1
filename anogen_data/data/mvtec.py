"""Read one category in MVTec AD layout (Bergmann et al., "MVTec AD", CVPR 2019) into a sample table.

Layout::

    ROOT/<category>/train/good/*.png              good training images
    ROOT/<category>/test/good/*.png               good test images
    ROOT/<category>/test/<defect>/*.png           real anomalies
    ROOT/<category>/ground_truth/<defect>/<stem>_mask.png   one mask per anomaly (255 = defect)
    ROOT/<category>/train/<defect>/*.png          training anomalies (read too; MVTec AD has none, and
                                                  versions written before the synthetic/ tree put theirs here)

A dataset version folder (``datasets/<name>/v<N>``, holding ``mvtec/<category>/``) is read as well: its
MVTec tree plus its training anomalies ``synthetic/<category>/images/<defect>/*.png`` with masks of the
same name in ``synthetic/<category>/masks/<defect>/`` (split "train", label "anomaly"; ``writers.mvtec``).

Variants read as well (see ``../shared/data/README.md``): ``.jpg``/``.png``/``.bmp``/``.tif`` images,
masks named ``<stem>_mask.<ext>`` or ``<stem>.<ext>``, grayscale/RGB/16-bit files, non-square images,
anti-aliased masks (thresholded at > 127 by ``image_io.read_mask``).

Every image is decoded once, so a corrupt file fails here with its name, not deep inside a stage, and
hashed (sha256), so the split can keep byte-identical files out of the eval set.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from anogen_data.data.image_io import IMAGE_SUFFIXES, image_size
from anogen_data.errors import AnogenError
from anogen_data.files import sha256_file
from anogen_data.records import Sample

GOOD = "good"
MVTEC, SYNTHETIC = "mvtec", "synthetic"  # the two image trees of a dataset version (``writers.mvtec``)
_CATEGORY_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def check_category_name(category: str) -> str:
    """Return ``category`` if it is a plain folder name (no path separators, no ``..``), else raise."""
    if not category or not _CATEGORY_NAME.match(category) or ".." in category:
        raise AnogenError(
            f"category '{category}' is not a plain folder name; pass the name of one folder under --data "
            "(letters, digits, '_', '-', '.'; no '/' or '..')"
        )
    return category


def list_categories(root: Path) -> list[str]:
    """Names of the folders under ``root`` that look like categories (they hold ``train/``)."""
    return sorted(p.name for p in Path(root).iterdir() if (p / "train").is_dir())


def _images_in(folder: Path) -> list[Path]:
    """Image files in ``folder`` sorted by name (hidden files and non-images are ignored)."""
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _subfolders(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _mask_stem(mask: Path) -> str:
    stem = mask.stem
    return stem[: -len("_mask")] if stem.endswith("_mask") else stem


def _pair_masks(defect: str, images: list[Path], gt_folder: Path, where: str = "train/ or test/",
                suffix: str = "_mask") -> dict[Path, Path]:
    """Map each anomaly image to its mask in ``gt_folder`` (``<stem>_mask.*`` preferred over ``<stem>.*``).

    Raises:
        AnogenError: an image without a mask, or a mask without an image.
    """
    masks = _images_in(gt_folder) if gt_folder.is_dir() else []
    by_name = {m.name.lower(): m for m in masks}  # suffixes match case-insensitively (.PNG, .Png)
    pairs: dict[Path, Path] = {}
    for image in images:
        stem = image.stem.lower()
        candidates = [f"{stem}_mask{s}" for s in IMAGE_SUFFIXES] + [f"{stem}{s}" for s in IMAGE_SUFFIXES]
        found = next((by_name[c] for c in candidates if c in by_name), None)
        if found is None:
            raise AnogenError(
                f"{image} has no mask: expected {gt_folder / (image.stem + suffix + '.png')}"
                f"{f' (or {image.stem}.png)' if suffix else ''}; add the mask or remove the image"
            )
        pairs[image] = found
    used = set(pairs.values())
    image_stems = {i.stem.lower() for i in images}
    for mask in masks:
        if mask not in used and _mask_stem(mask).lower() not in image_stems and mask.stem.lower() not in image_stems:
            raise AnogenError(
                f"{mask} is a mask without an image: no {defect}/{_mask_stem(mask)}.* in {where}; "
                "add the image or remove the mask"
            )
    return pairs


def _check_root(root: Path, category: str) -> Path:
    check_category_name(category)
    root = Path(root)
    if not root.is_dir():
        raise AnogenError(f"data folder {root} does not exist; pass --data pointing at a folder in MVTec AD layout")
    folder = root / category
    if not folder.is_dir():
        found = list_categories(root)
        listing = ", ".join(found) if found else "none (no folder with a train/ subfolder)"
        from anogen_data.data.download import download_hint

        raise AnogenError(f"category folder {folder} does not exist; categories found in {root}: {listing}; "
                          f"{download_hint(category, root)}")
    good = folder / "train" / GOOD
    if not good.is_dir() or not _images_in(good):
        raise AnogenError(f"{good} holds no images; a category needs good training images in train/good")
    return folder


def _anomaly_folders(folder: Path) -> list[tuple[str, str, list[Path]]]:
    """(split, defect, images) for every non-good folder under train/ and test/."""
    found = []
    for split in ("train", "test"):
        for sub in _subfolders(folder / split):
            if sub.name == GOOD:
                continue
            images = _images_in(sub)
            if not images:
                raise AnogenError(f"defect folder {sub} holds no images; add its anomalies or remove the folder")
            found.append((split, sub.name, images))
    return found


def _orphan_mask_folders(folder: Path, defects: set[str]) -> None:
    for gt in _subfolders(folder / "ground_truth"):
        if gt.name not in defects and _images_in(gt):
            raise AnogenError(
                f"{gt} holds masks without images: there is no test/{gt.name} (or train/{gt.name}) folder; "
                "add the images or remove the masks"
            )


def _version_tree(root: Path, category: str) -> tuple[Path, Path | None]:
    """(data root of the MVTec tree, training-anomaly tree or None): a version folder holds
    ``mvtec/<category>`` (and no ``<category>`` folder of its own)."""
    if not (root / category).is_dir() and (root / MVTEC / category).is_dir():
        extra = root / SYNTHETIC / category
        return root / MVTEC, extra if extra.is_dir() else None
    return root, None


def _training_anomaly_jobs(tree: Path) -> list[tuple[Path, str, str, str, Path | None]]:
    """Jobs for ``synthetic/<category>/images/<defect>/*`` paired with ``masks/<defect>/`` (same names)."""
    images_root, masks_root = tree / "images", tree / "masks"
    defects = {sub.name for sub in _subfolders(images_root)}
    for gt in _subfolders(masks_root):
        if gt.name not in defects and _images_in(gt):
            raise AnogenError(f"{gt} holds masks without images: there is no {images_root / gt.name} folder; "
                              "add the images or remove the masks")
    jobs = []
    for sub in _subfolders(images_root):
        images = _images_in(sub)
        if not images:
            raise AnogenError(f"defect folder {sub} holds no images; add its anomalies or remove the folder")
        pairs = _pair_masks(sub.name, images, masks_root / sub.name, where=str(images_root), suffix="")
        jobs += [(p, "train", "anomaly", sub.name, pairs[p]) for p in images]
    return jobs


def load_category(root: Path, category: str, *, workers: int = 4) -> list[Sample]:
    """Read one category into a sample table, validating every image/mask pair.

    Args:
        root: data root holding ``<category>/``, or a dataset version folder holding ``mvtec/<category>/``
            (then its ``synthetic/<category>/`` training anomalies are read too).
        category: folder name of the category (no path separators).
        workers: threads decoding images (OpenCV releases the GIL).

    Returns:
        Samples ordered train/good, test/good, then anomalies by (split, defect type, file name);
        paths are absolute. Training anomalies (a version's ``synthetic/`` tree, or ``train/<defect>``)
        have split "train" and label "anomaly".

    Raises:
        AnogenError: missing folder or category, no train/good images, an image without a mask or a
            mask without an image, an empty defect folder, a mask whose size differs from its image,
            or an unreadable image file. The message names the file and what to do.
    """
    check_category_name(category)
    mvtec_root, extra = _version_tree(Path(root), category)
    folder = _check_root(mvtec_root, category).resolve()
    jobs: list[tuple[Path, str, str, str, Path | None]] = []
    for split in ("train", "test"):
        good = folder / split / GOOD
        if good.is_dir():
            jobs += [(p, split, "good", GOOD, None) for p in _images_in(good)]
    anomalies = _anomaly_folders(folder)
    _orphan_mask_folders(folder, {defect for _, defect, _ in anomalies})
    by_defect: dict[str, list[tuple[str, list[Path]]]] = {}
    for split, defect, images in anomalies:
        by_defect.setdefault(defect, []).append((split, images))
    for defect, groups in sorted(by_defect.items()):
        all_images = [p for _, images in groups for p in images]
        pairs = _pair_masks(defect, all_images, folder / "ground_truth" / defect)
        for split, images in groups:
            jobs += [(p, split, "anomaly", defect, pairs[p]) for p in images]
    if extra is not None:
        jobs += _training_anomaly_jobs(extra.resolve())
    jobs.sort(key=_sort_key)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(_make_sample, jobs))


def _sort_key(job: tuple[Path, str, str, str, Path | None]) -> tuple:
    """train/good, test/good, then anomalies by (split, defect type, file name)."""
    path, split, label, defect, _ = job
    return (label != GOOD, split != "train", defect, path.name)


def _make_sample(job: tuple[Path, str, str, str, Path | None]) -> Sample:
    path, split, label, defect, mask = job
    width, height = image_size(path)
    if mask is not None:
        mask_size = image_size(mask)
        if mask_size != (width, height):
            raise AnogenError(
                f"{mask} is {mask_size[0]}x{mask_size[1]} but its image {path} is {width}x{height}; "
                "masks must have their image's size"
            )
    return Sample(
        path=str(path), split=split, label=label, defect_type=defect,
        mask_path=None if mask is None else str(mask), width=width, height=height, sha256=sha256_file(path),
    )
