"""Stage ``train``: fit the bundled detector on a dataset version; write safetensors + ``model.json``.

Reads ``VERSION/mvtec/<category>/train/good`` and ``VERSION/synthetic/<category>/`` (good images and
synthetic anomalies), the version's COCO
``mask_quality`` flags (AnoGen weak box labels, Gui et al., ECCV 2024) and ``manifest.json`` (its
sha256 goes into ``model.json``). Without a version, ``--synthesis perlin|cutpaste`` trains on the
index's train/good images with on-the-fly anomalies only: the DRAEM baseline (Zavrtanik et al., ICCV
2021). Writes ``OUT/model.safetensors`` (every weight except a frozen pretrained teacher) and
``OUT/model.json`` (model config, recipe, texture source, letterbox canvas, dataset and manifest sha256,
training curve). ``--recipe`` picks one of the papers' recipes (``detector.recipes``); ``--textures DIR``
fills Perlin anomalies from a texture folder (DRAEM's DTD) instead of the category's good images;
``--box-labels`` turns every anomaly's mask into its box and trains it with AnoGen's weak loss.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from anogen_data.config import TrainConfig, config_to_dict
from anogen_data.errors import AnogenError
from anogen_data.files import atomic_output_dir, check_output_dir, sha256_file, write_json

MODELS = ("unet", "draem", "destseg")
SYNTHESES = ("perlin", "cutpaste")
FORMAT = "anogen-detector/1"


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when available, else "cpu"; anything else is returned as given."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def model_width(config: TrainConfig, device: str) -> int:
    """The configured width, or the paper's 64 on GPU and the recipe's CPU width (16) otherwise."""
    return config.base_width or (64 if device.startswith("cuda") else train_recipe(config).base_width)


def train_recipe(config: TrainConfig):
    """The config's recipe: ``recipe``, or the one named after ``model``. A recipe fixes its model, so
    ``recipe`` wins over ``model`` (the CLI refuses the two when they disagree). AnogenError when unknown."""
    from anogen_data.detector.recipes import RECIPES

    name = config.recipe or config.model
    if name not in RECIPES:
        raise AnogenError(f"unknown --recipe '{name}'; choose one of {', '.join(RECIPES)}")
    return RECIPES[name]


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def texture_files(textures: Path | None) -> list[str] | None:
    """Image files under ``textures`` (any depth, sorted: DTD's ``images/<class>/*.jpg``), None for none.

    Raises:
        AnogenError: the folder does not exist or holds no image file.
    """
    if textures is None:
        return None
    root = Path(textures)
    if not root.is_dir():
        raise AnogenError(f"--textures {root} is not a folder; pass a folder of texture images (e.g. dtd/images)")
    files = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise AnogenError(f"--textures {root} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def load_teacher():
    """DeSTSeg's frozen teacher: ImageNet EfficientNet-Lite0 (``anogen_data.features``)."""
    from anogen_data.features.efficientnet_lite import load_efficientnet_lite0

    return load_efficientnet_lite0(pretrained=True)


def training_items(version: Path | None, index: Path | None, config: TrainConfig, category: str | None):
    """(category, good items, anomaly items, dataset facts) from a version, or from an index's train role.

    Raises:
        AnogenError: neither given, a missing manifest, or an index without train/good images.
    """
    from anogen_data.detector.data import TrainItem, read_version
    from anogen_data.records import read_index

    if version is not None:
        manifest = Path(version) / "manifest.json"
        if not manifest.is_file():
            raise AnogenError(f"{manifest} does not exist; pass a finished dataset version (anogen-data export)")
        category, good, anomalies = read_version(Path(version), category, real_shots=config.real_shots)
        if config.box_labels:  # AnoGen's stage 3 on any version: each mask becomes its box (weak label)
            anomalies = [dataclasses.replace(a, mask_quality="box") for a in anomalies]
        facts = {"version": str(Path(version).resolve()), "manifest_sha256": sha256_file(manifest)}
    elif index is not None:
        entries = [e for e in read_index(Path(index)) if e.role == "train" and e.label == "good"]
        if not entries:
            raise AnogenError(f"{index} has no role 'train' good images; re-run `anogen-data index`")
        category = category or entries[0].category
        good, anomalies = [TrainItem(e.path) for e in entries], []
        facts = {"version": None, "index": str(Path(index).resolve()), "index_sha256": sha256_file(Path(index))}
    else:
        raise AnogenError("pass a dataset version folder, or --index with --synthesis perlin|cutpaste for the baseline")
    facts |= {
        "n_good": len(good), "n_anomalies": len(anomalies),
        "n_box_labels": sum(a.mask_quality == "box" for a in anomalies),
    }
    return category, good, anomalies, facts


def _build_and_train(config: TrainConfig, good, anomalies, canvas, device: str, progress: bool, textures=None):
    """Seeded model init + training (fork_rng keeps the global RNG untouched); returns (model, curve)."""
    import torch

    from anogen_data.detector.data import DetectorTrainSet
    from anogen_data.detector.model import build_model
    from anogen_data.detector.train import train_loop

    recipe = train_recipe(config)
    length = config.samples_per_epoch or 2 * len(good)
    dataset = DetectorTrainSet(
        good, anomalies, canvas, recipe.mix, config.synthesis, length, config.seed, config.augment, textures
    )
    teacher = load_teacher() if recipe.model == "destseg" else None
    cutoff = recipe.p_cutoff if config.p_cutoff is None else config.p_cutoff
    epochs = config.epochs or recipe.epochs
    steps = epochs * max(1, length // config.batch_size)
    with torch.random.fork_rng(devices=[]), _progress(progress, steps, recipe.name) as on_step:
        torch.manual_seed(config.seed)
        model = build_model(recipe.model, model_width(config, device), min(canvas), teacher)
        curve = train_loop(
            model, dataset, epochs=epochs, batch_size=config.batch_size, lr=config.lr, seed=config.seed,
            p_cutoff=cutoff, cutoff_warmup_steps=config.cutoff_warmup_steps, recipe=recipe, device=device,
            on_step=on_step,
        )
    return model, curve


class _progress:
    """A rich progress bar showing the loss, or a no-op callback when ``enabled`` is False."""

    def __init__(self, enabled: bool, total: int, name: str):
        self.enabled, self.total, self.name = enabled, total, name

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import Progress

        self.bar = Progress(*Progress.get_default_columns(), "loss {task.fields[loss]:.4f}", transient=True)
        self.bar.start()
        task = self.bar.add_task(f"train {self.name}", total=self.total, loss=float("nan"))
        return lambda step, loss: self.bar.update(task, completed=step, loss=loss)

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.stop()
        return False


def _no_empty_lists(record: dict) -> dict:
    """``record`` with empty lists as None: model.json is a DVC plot (``curve``), and DVC's plot reader
    crashes on any empty list in the file ("'NoneType' object has no attribute 'keys'")."""
    return {k: (None if isinstance(v, (list, tuple)) and not v else v) for k, v in record.items()}


def run_train(
    out: Path,
    config: TrainConfig,
    version: Path | None = None,
    index: Path | None = None,
    category: str | None = None,
    force: bool = False,
    progress: bool = True,
    textures: Path | None = None,
) -> Path:
    """Train and write ``out/model.safetensors`` + ``out/model.json`` atomically; returns ``out``.

    ``textures``: a folder of texture images for the Perlin anomalies (DRAEM's DTD); None = the
    category's own good images (recorded as ``"textures": {"source": "in-category", ...}``).
    """
    from safetensors.torch import save_file

    from anogen_data.data.image_io import image_size
    from anogen_data.detector.data import canvas_for

    check_output_dir(Path(out), force=force)  # before training, not after
    if config.model not in MODELS:
        raise AnogenError(f"unknown --model '{config.model}'; choose one of {', '.join(MODELS)}")
    recipe = train_recipe(config)
    texture_list = texture_files(textures)
    if config.synthesis not in SYNTHESES:
        raise AnogenError(f"unknown --synthesis '{config.synthesis}'; choose one of {', '.join(SYNTHESES)}")
    if config.image_size % 32 or config.image_size < 32:
        raise AnogenError(f"--image-size {config.image_size} must be a positive multiple of 32 (the U-Net pools 5 times)")
    category, good, anomalies, facts = training_items(version, index, config, category)
    canvas = canvas_for(*image_size(Path(good[0].image)), config.image_size)
    device = resolve_device(config.device)
    start = time.perf_counter()
    model, curve = _build_and_train(config, good, anomalies, canvas, device, progress, texture_list)
    seconds = time.perf_counter() - start
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not k.startswith("teacher.")}
    with atomic_output_dir(Path(out), force=force) as tmp:
        save_file(state, str(tmp / "model.safetensors"))
        write_json(tmp / "model.json", {
            "format": FORMAT, "model": recipe.model, "recipe": _no_empty_lists(dataclasses.asdict(recipe)),
            "textures": {"source": "folder", "path": str(Path(textures).resolve()), "n_files": len(texture_list)}
            if texture_list else {"source": "in-category", "note": "Perlin filled from the category's good images, not DTD"},
            "base_width": model_width(config, device),
            "canvas": list(canvas), "category": category, "config": config_to_dict(config),
            "dataset": facts, "curve": curve, "train_seconds": round(seconds, 2), "device": device,
        })
    return Path(out)
