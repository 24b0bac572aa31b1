"""Stage ``benchmark``: a trained detector on the index's held-out real images; metrics, PR curves, PNG.

Only index rows with role "eval" are read (real test/good and the real anomalies that no concept,
layout or paste saw); an eval image that is also a learn shot is refused, by path and by content (the
sha256 of the files on disk, not the index's word for it). Each image is letterboxed
into the model's canvas like in training, and the score map is cropped back to the image content, so
non-square images are scored unsquashed. Metrics: ``anogen_data.detector.metrics.evaluate`` (image and
pixel AUROC/AP/F1-max, AUPRO at FPR 0.3; MVTec AD, Bergmann et al., IJCV 2021). The pixel- and
image-level precision-recall curves go to ``pr_pixel.json`` / ``pr_image.json``: one list of
``{"recall", "precision"}`` rows each (<= 200), what ``dvc plots`` reads (x: recall, y: precision);
two files, because DVC merges the row lists of one JSON file by position.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anogen_data.config import BenchmarkConfig, config_to_dict
from anogen_data.errors import AnogenError
from anogen_data.files import atomic_output_dir, check_output_dir, sha256_file, split_metrics, write_json
from anogen_data.records import IndexEntry, read_index


def eval_entries(index: Path, category: str | None = None) -> list[IndexEntry]:
    """The eval split of ``index`` (optionally one category), guarded against learn-shot leaks.

    Raises:
        AnogenError: no eval rows, or an eval image that is also a learn shot (same file, or a file with
            the same bytes: the files are hashed here, whatever the index says).
    """
    entries = read_index(Path(index))
    if category:
        entries = [e for e in entries if not e.category or e.category == category]
    learn = {str(Path(e.path).resolve()) for e in entries if e.role == "learn"}
    evaluation = [e for e in entries if e.role == "eval"]
    leaked = [e.path for e in evaluation if str(Path(e.path).resolve()) in learn]
    if leaked:
        raise AnogenError(f"{index}: {leaked[0]} is both a learn shot and an eval image; re-run `anogen-data index`")
    if not evaluation:
        raise AnogenError(f"{index} has no role 'eval' rows to benchmark on; re-run `anogen-data index`")
    _refuse_identical(index, [e for e in entries if e.role == "learn"], evaluation)
    return evaluation


def _refuse_identical(index: Path, learn: list[IndexEntry], evaluation: list[IndexEntry]) -> None:
    """Raise when an eval image's bytes equal a learn shot's (hashes the files themselves)."""
    hashes = {}
    for entry in learn:
        if Path(entry.path).is_file():
            hashes.setdefault(sha256_file(Path(entry.path)), entry.path)
    for entry in evaluation:
        twin = hashes.get(sha256_file(Path(entry.path))) if Path(entry.path).is_file() else None
        if twin is not None:
            raise AnogenError(f"{index}: eval image {entry.path} has the same bytes as learn shot {twin}; "
                              "re-run `anogen-data index` (it drops such duplicates from eval)")


def load_detector(model_dir: Path, device: str = "cpu"):
    """(model in eval mode, model.json dict) from a ``train`` output folder.

    Raises:
        AnogenError: missing/invalid model.json or weights that do not fit the described model.
    """
    from safetensors.torch import load_file

    from anogen_data.detector.model import build_model
    from anogen_data.schemas import DetectorMeta, read_json_model
    from anogen_data.stages.train import FORMAT, load_teacher

    meta_path, weights = Path(model_dir) / "model.json", Path(model_dir) / "model.safetensors"
    if not meta_path.is_file() or not weights.is_file():
        raise AnogenError(f"{model_dir} has no model.json + model.safetensors; pass a folder written by `anogen-data train`")
    meta = read_json_model(meta_path, DetectorMeta).model_dump()
    if meta.get("format") != FORMAT:
        raise AnogenError(f"{meta_path} is not an anogen detector ({FORMAT}); retrain with `anogen-data train`")
    teacher = load_teacher() if meta["model"] == "destseg" else None
    model = build_model(meta["model"], meta["base_width"], min(meta["canvas"]), teacher)
    missing, unexpected = model.load_state_dict(load_file(str(weights)), strict=False)
    if unexpected or any(not k.startswith("teacher.") for k in missing):
        raise AnogenError(f"{weights} does not match a {meta['model']} of width {meta['base_width']}; retrain it")
    return model.to(device).eval(), meta


def load_eval_images(entries: list[IndexEntry], canvas: tuple[int, int]):
    """Letterboxed images (N, 3, H, W) float in [0, 1], ground truths cropped to content (uint8 {0, 255}),
    content sizes and labels (1 = anomaly)."""
    import torch

    from anogen_data.data.image_io import read_image, read_mask
    from anogen_data.detector.data import letterbox

    images, masks, contents, labels = [], [], [], []
    for e in entries:
        image, content = letterbox(read_image(Path(e.path)), canvas)
        images.append(torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32) / 255.0))
        if e.mask_path:
            mask = letterbox(read_mask(Path(e.mask_path)), canvas, nearest=True)[0][: content[0], : content[1]]
        else:
            mask = np.zeros(content, np.uint8)
        masks.append(mask)
        contents.append(content)
        labels.append(int(e.label == "anomaly"))
    return torch.stack(images), masks, contents, labels


def score_images(maps, contents, pool: int):
    """Crop each (1, H, W) map to its content; score each image with ``detector.metrics.image_score``."""
    from anogen_data.detector.metrics import image_score

    cropped = [m[0, : h, : w] for m, (h, w) in zip(maps, contents)]
    return [m.numpy() for m in cropped], [image_score(m, pool) for m in cropped]


def score_map_figure(images, maps, masks, contents, labels, count: int) -> np.ndarray:
    """Rows of [image | ground truth in red | score map (JET)], anomalies first: uint8 RGB."""
    import cv2

    order = [i for i, lab in enumerate(labels) if lab] + [i for i, lab in enumerate(labels) if not lab]
    rows = []
    for i in order[:count]:
        h, w = contents[i]
        image = (images[i].numpy().transpose(1, 2, 0)[:h, :w] * 255).round().astype(np.uint8)
        truth = image.copy()
        truth[masks[i] > 0] = (0.4 * truth[masks[i] > 0] + [153, 0, 0]).astype(np.uint8)
        heat = cv2.applyColorMap((np.clip(maps[i], 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
        rows.append(np.concatenate([image, truth, heat], axis=1))
    width = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)


def run_benchmark(model_dir: Path, index: Path, out: Path, config: BenchmarkConfig, force: bool = False) -> dict:
    """Evaluate; write ``out/metrics.json``, ``out/info.json``, ``out/pr_{pixel,image}.json``, ``out/score_maps.png``.

    ``metrics.json`` holds numbers only (the DVC metric); ``info.json`` the model, category, canvas, index
    hash and config. Written atomically. Returns the whole report (both files' keys).
    """
    from anogen_data.data.image_io import write_png
    from anogen_data.detector.metrics import evaluate_with_curves
    from anogen_data.detector.train import predict_maps
    from anogen_data.stages.train import resolve_device

    check_output_dir(Path(out), force=force)
    device = resolve_device(config.device)
    model, meta = load_detector(Path(model_dir), device)
    entries = eval_entries(Path(index), meta.get("category"))
    canvas = tuple(meta["canvas"])
    images, masks, contents, labels = load_eval_images(entries, canvas)
    maps = predict_maps(model, images, config.batch_size, device)
    pool = config.score_pool or max(3, min(canvas) // 16)
    cropped, scores = score_images(maps, contents, pool)
    metrics, curves = evaluate_with_curves(scores, labels, cropped, masks, config.fpr_limit)
    report = {
        **{k: (None if v != v else round(v, 6)) for k, v in metrics.items()},  # NaN (undefined) -> null
        "n_eval": len(entries), "n_anomalous": sum(labels),
        "model": meta["model"], "category": meta.get("category"), "canvas": list(canvas),
        "index_sha256": sha256_file(Path(index)), "config": config_to_dict(config),
    }
    with atomic_output_dir(Path(out), force=force) as tmp:
        numbers, info = split_metrics(report)
        write_json(tmp / "metrics.json", numbers)
        write_json(tmp / "info.json", info)
        for level, rows in curves.items():
            write_json(tmp / f"pr_{level}.json", rows)
        write_png(tmp / "score_maps.png", score_map_figure(images, cropped, masks, contents, labels, config.figures))
    return report
