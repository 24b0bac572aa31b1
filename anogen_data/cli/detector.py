"""CLI commands ``anogen-data train`` and ``anogen-data benchmark``: the bundled detector."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from anogen_data.cli.app import CategoryOpt, DeviceOpt, ForceOpt, OutOpt, ParamsOpt, SeedOpt, app, console, say
from anogen_data.cli.choices import DetectorModel, Recipe, Synthesis, value
from anogen_data.config import BenchmarkConfig, TrainConfig

IndexOpt = Annotated[Optional[Path], typer.Option("--index", help="index.jsonl written by `anogen-data index`.")]


@app.command("train", defaults=TrainConfig)
def train_command(
    out: OutOpt,
    version: Annotated[Optional[Path], typer.Argument(help="Dataset version folder (datasets/NAME/vN).")] = None,
    model: Annotated[Optional[DetectorModel], typer.Option("--model", help="destseg: frozen teacher, fast on CPU; unet / draem: the papers' U-Net.")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1)] = None,
    image_size: Annotated[Optional[int], typer.Option("--image-size", min=32, help="Long side of the canvas (multiple of 32).")] = None,
    base_width: Annotated[Optional[int], typer.Option("--width", min=1, help="Network width (0 = 64 on GPU, 16 on CPU).")] = None,
    synthesis: Annotated[
        Optional[Synthesis],
        typer.Option("--synthesis", help="On-the-fly anomalies of the recipe's Perlin share, and of its generated share when there is no version (the baseline)."),
    ] = None,
    recipe: Annotated[
        Optional[Recipe],
        typer.Option("--recipe", help="The papers' recipe: draem (AnoGen DRAEM: 25% Perlin, "
                     "25% generated, 50% clean), destseg (AnoGen DeSTSeg: 50/50 Perlin/generated, gamma 4, student "
                     "first), unet (AnomalyDiffusion/DualAnoDiff U-Net: 50% clean, 50% generated). Default: --model's."),
    ] = None,
    textures: Annotated[
        Optional[Path], typer.Option("--textures", help="Folder of texture images for Perlin anomalies (DRAEM: the "
                                     "DTD's images/). Default: the category's own good images.")
    ] = None,
    box_labels: Annotated[
        bool, typer.Option("--box-labels", help="Train every anomaly on its mask's box with AnoGen's weak loss.")
    ] = False,
    index: IndexOpt = None,
    category: CategoryOpt = None,
    device: DeviceOpt = None,
    seed: SeedOpt = None,
    params: ParamsOpt = None,
    force: ForceOpt = False,
) -> None:
    """Train the bundled detector on train/good + the version's synthetic anomalies, by one paper's recipe.

    Writes OUT/model.safetensors and OUT/model.json (config, recipe, texture source, dataset version + manifest sha256, loss curve).

    Box-labelled anomalies (COCO mask_quality "box", or all of them with --box-labels) train with AnoGen's weakly-supervised loss.

    Epochs and width default to reduced CPU values (20 epochs, width 16); the released scripts run 700 epochs (DRAEM) / 5000 steps (DeSTSeg).

    Usage:

      anogen-data train datasets/bottle/v1 --model destseg --out runs/bottle/model

      anogen-data train datasets/bottle/v1 --recipe draem --textures dtd/images --box-labels --out runs/bottle/draem-box

      anogen-data train datasets/bottle/v1 --model unet --epochs 50 --image-size 256 --device cuda --out runs/bottle/unet

      anogen-data train --synthesis perlin --index runs/bottle/index/index.jsonl --model draem --out runs/bottle/draem-perlin
    """
    from anogen_data.config import resolve_config
    from anogen_data.errors import AnogenError
    from anogen_data.paths import check_plain_name
    from anogen_data.stages.train import run_train

    if version is None and index is None:
        raise AnogenError("pass a dataset version folder, or --index (with --synthesis) to train on on-the-fly anomalies")
    if category is not None:
        check_plain_name(category, "--category")
    model, recipe = value(model), value(recipe)
    if recipe is not None and model is not None and recipe != model:
        raise AnogenError(f"--recipe {recipe} trains the {recipe} detector; drop --model {model} or pick --recipe {model}")
    overrides = {
        "model": model or recipe, "recipe": recipe, "epochs": epochs, "image_size": image_size,
        "base_width": base_width, "synthesis": value(synthesis), "device": device, "seed": seed,
        "box_labels": True if box_labels else None,  # off: params.yaml decides
    }
    config = resolve_config(TrainConfig, params, "train", overrides)
    path = run_train(out, config, version=version, index=None if version else index, category=category, force=force,
                     textures=textures)
    say(f"wrote {path}/model.safetensors and model.json")


@app.command("benchmark", defaults=BenchmarkConfig)
def benchmark_command(
    model_dir: Annotated[Path, typer.Argument(help="Folder written by `anogen-data train`.")],
    out: OutOpt,
    index: Annotated[Path, typer.Option("--index", help="index.jsonl; only its role 'eval' rows are read.")],
    device: DeviceOpt = None,
    params: ParamsOpt = None,
    force: ForceOpt = False,
) -> None:
    """Benchmark a trained detector on the held-out real images (role "eval") of an index.

    Writes OUT/metrics.json (numbers only: image/pixel AUROC, AP, F1-max, AUPRO@0.3, counts), OUT/info.json
    (model, category, canvas, index sha256, config), OUT/pr_{pixel,image}.json and OUT/score_maps.png.

    Usage:

      anogen-data benchmark runs/bottle/model --index runs/bottle/index/index.jsonl --out runs/bottle/bench
    """
    from rich.table import Table

    from anogen_data.config import resolve_config
    from anogen_data.stages.benchmark import run_benchmark

    config = resolve_config(BenchmarkConfig, params, "benchmark", {"device": device})
    report = run_benchmark(model_dir, index, out, config, force=force)
    table = Table(title=f"{report['model']} on {report['n_eval']} eval images ({report['n_anomalous']} anomalous)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("image_auroc", "image_ap", "pixel_auroc", "pixel_ap", "pixel_f1_max", "aupro"):
        value = report[key]
        table.add_row(key, "n/a" if value is None else f"{value:.4f}")
    console().print(table)
    say(f"wrote {out}/metrics.json and score_maps.png")
