"""CLI command ``anogen-data index``: validate a real category and write its few-shot split."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from anogen_data.cli.app import CategoryOpt, DataOpt, ForceOpt, OutOpt, ParamsOpt, SeedOpt, app, console
from anogen_data.cli.choices import Protocol, value
from anogen_data.config import IndexConfig


@app.command("index", defaults=IndexConfig)
def index_command(
    out: OutOpt,
    data: DataOpt = None,
    category: CategoryOpt = None,
    protocol: Annotated[
        Optional[Protocol],
        typer.Option(
            "--protocol",
            help="first-third: first ceil(1/3) of each defect type learns (AnomalyDiffusion/DualAnoDiff); "
            "random-k: K seeded shots (AnoGen).",
        ),
    ] = None,
    shots: Annotated[
        Optional[int], typer.Option("--shots", min=1, help="K for random-k (first-third ignores it).")
    ] = None,
    seed: SeedOpt = None,
    params: ParamsOpt = None,
    force: ForceOpt = False,
) -> None:
    """Read one category in MVTec AD layout, validate it, and write index.jsonl with each image's role.

    Roles: train (train/good), learn (the few real anomalies concept learning may see), eval (test/good and
    the other anomalies, held out for benchmarking). Prints the counts per defect type.

    Usage:

      anogen-data index --category demo --out runs/demo/index

      anogen-data index --data /data/mvtec --category bottle --out runs/bottle/index

      anogen-data index --data /data/mvtec --category bottle --protocol random-k --shots 3 --seed 1 --out runs/bottle/index-k3
    """
    from anogen_data.config import resolve_config
    from anogen_data.stages.index import run_index

    overrides = {"data": data, "category": category, "protocol": value(protocol), "shots": shots, "seed": seed}
    config = resolve_config(IndexConfig, params, "index", overrides)
    path = run_index(config, out, force=force)
    _print_summary(path, config)


def _print_summary(path, config) -> None:
    from rich.table import Table

    from anogen_data.data.split import role_counts
    from anogen_data.records import read_index

    shots = f" K={config.shots} seed={config.seed}" if config.protocol == "random-k" else ""
    table = Table(title=f"{config.category}: {config.protocol}{shots}")
    for name in ("defect type", "train", "learn", "eval"):
        table.add_column(name, justify="left" if name == "defect type" else "right")
    for defect, counts in role_counts(read_index(path)).items():
        table.add_row(defect, str(counts["train"]), str(counts["learn"]), str(counts["eval"]))
    out = console()
    out.print(table)
    out.print(f"wrote {path}")
