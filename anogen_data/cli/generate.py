"""CLI commands ``anogen-data propose`` and ``anogen-data generate`` (layouts and CPU/GPU synthesis)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer

from anogen_data.cli.app import (
    CategoryOpt, DataOpt, DeviceOpt, DtypeOpt, ForceOpt, OutOpt, ParamsOpt, SeedOpt, app, say,
)
from anogen_data.cli.choices import Backend, value
from anogen_data.config import GenerateConfig, ProposeConfig

NOpt = Annotated[Optional[int], typer.Option("--n", "-n", help="Number of synthetic samples.")]
GenerateNOpt = Annotated[Optional[int], typer.Option(
    "--n", "-n", help="Number of synthetic samples; with --layouts (and no n in --params) the file's count.")]
DefectOpt = Annotated[Optional[str], typer.Option("--defect", help="Only this defect type (default: split over all by learn shots).")]
ForegroundOpt = Annotated[
    Optional[str], typer.Option("--foreground", help="auto: estimated from the good images (objects) | full: whole image.")
]
ShapeOpt = Annotated[Optional[str], typer.Option("--shape", help="auto | real | perlin | stroke | mixed mask shapes.")]
PlacementOpt = Annotated[Optional[str], typer.Option(
    "--placement", help="Real shapes: auto (polar on objects) | polar (learn shot's radius, new angle) | free.")]
IndexFileOpt = Annotated[Optional[Path], typer.Option("--index", help="index.jsonl from `anogen-data index`.")]


@contextlib.contextmanager
def rich_progress() -> Iterator:
    """A rich progress bar with rate and ETA; yields ``start(description, total) -> advance(k)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as progress:

        def start(description: str, total: int):
            task = progress.add_task(description, total=total, rate="")

            def advance(k: int) -> None:
                speed = progress.tasks[task].speed
                progress.update(task, advance=k, rate=f"{speed:.1f} img/s" if speed else "")

            return advance

        yield start


@app.command("propose", defaults=ProposeConfig)
def propose_command(
    index: Annotated[Path, typer.Option("--index", help="index.jsonl from `anogen-data index`.")],
    out: OutOpt,
    n: NOpt = None,
    defect: DefectOpt = None,
    foreground: ForegroundOpt = None,
    shape: ShapeOpt = None,
    placement: PlacementOpt = None,
    seed: SeedOpt = None,
    params: ParamsOpt = None,
    force: ForceOpt = False,
) -> None:
    """Decide where and what shape each synthetic defect will be, and write layouts.jsonl.

    Each layout: source good image, defect type, box (on the foreground), mask (RLE) and a per-sample seed.

    Usage:

      anogen-data propose --index runs/demo/index/index.jsonl --out runs/demo/layouts --n 200

      anogen-data propose --index runs/bottle/index/index.jsonl --out runs/bottle/layouts --defect broken_large --seed 3

      anogen-data propose --index runs/bottle/index/index.jsonl --out runs/bottle/layouts-free --placement free
    """
    from anogen_data.config import ProposeConfig, resolve_config
    from anogen_data.stages.propose import run_propose

    overrides = {"n": n, "defect": defect, "foreground": foreground, "shape": shape, "placement": placement,
                 "seed": seed}
    config = resolve_config(ProposeConfig, params, "propose", overrides)
    with rich_progress() as start:
        path = run_propose(config, index, out, force=force, on_progress=start("propose", config.n))
    say(f"wrote {path}")


@app.command("generate", defaults=GenerateConfig)
def generate_command(
    category: CategoryOpt = None,
    n: GenerateNOpt = None,
    data: DataOpt = None,
    backend: Annotated[Optional[Backend], typer.Option("--backend", "-b", help="auto: paste when the category has real learn shots, else perlin.")] = None,
    defect: DefectOpt = None,
    seed: SeedOpt = None,
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", min=1, help="Worker processes (same bytes for any count).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Dataset root; with --no-export the synthesis folder.")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Dataset name (default: the category).")] = None,
    index: IndexFileOpt = None,
    layouts: Annotated[Optional[Path], typer.Option("--layouts", help="layouts.jsonl from `anogen-data propose`.")] = None,
    concepts: Annotated[Optional[Path], typer.Option("--concepts", help="Output of `concepts learn` (diffusion backends).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="Diffusion model: hub id, folder or 'tiny'.")] = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Samples per backend call (diffusion backends).")] = None,
    foreground: ForegroundOpt = None,
    shape: ShapeOpt = None,
    placement: PlacementOpt = None,
    no_export: Annotated[bool, typer.Option("--no-export", help="Stop after synthesis: OUT/records.jsonl, images/, masks/.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its records.")] = False,
    params: ParamsOpt = None,
) -> None:
    """Make synthetic anomalies on good images and write a dataset version (index -> propose -> synthesise -> export).

    With --params every section it runs applies (index, propose, generate, export): the one-shot run makes
    the bytes of the staged DVC run. The category comes from --index when --category is not given.

    Usage:

      anogen-data generate --category demo --n 100

      anogen-data generate --data /data/mvtec --category bottle --n 1000 --backend paste --workers 2

      anogen-data generate --category demo --n 50 --index runs/demo/index/index.jsonl --layouts runs/demo/layouts/layouts.jsonl --no-export --out runs/demo/synth

      accelerate launch --num_processes 8 -m anogen_data.cli generate --category bottle --data /data/mvtec --n 800 --backend anogen --concepts runs/bottle/concepts
    """
    from anogen_data.config import load_params_section, resolve_generate_config
    from anogen_data.stages.generate import count_layouts, index_file_category, run_generate

    section = load_params_section(params, "generate")
    if n is None and layouts is not None and "n" not in section:
        n = count_layouts(layouts, defect or section.get("defect"))  # the file decides; params.yaml's n wins (DVC)

    overrides = {
        "n": n, "backend": value(backend), "defect": defect, "seed": seed, "workers": workers,
        "out": None if out is None else str(out), "name": name, "model": model, "device": device, "dtype": dtype,
        "batch_size": batch_size,
    }
    if category is None and index is not None:
        category = index_file_category(index)  # the dataset is named after the indexed category, not "demo"
    config = resolve_generate_config(params, overrides, index={"category": category, "data": data},
                                     propose={"foreground": foreground, "shape": shape, "placement": placement})
    if config.n < 1:
        from anogen_data.errors import AnogenError

        raise AnogenError(f"--n must be at least 1 (got {config.n}); ask for how many synthetic samples to make")
    with rich_progress() as start:
        path = run_generate(config, index_file=index, layouts_file=layouts, concepts=concepts,
                            no_export=no_export, resume=resume, progress=start)
    if path is not None:  # None: a non-main `accelerate launch` process (the main one merges and writes)
        say(f"wrote {path}")
