"""CLI commands ``filter`` (per-sample keep/drop with reasons) and ``quality`` (dataset-level metrics).

Filters and metrics use EfficientNet-Lite0 ImageNet features (Tan & Le, ICML 2019); see
``anogen_data.filters`` and ``anogen_data.quality``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from anogen_data.cli.app import ForceOpt, OutOpt, ParamsOpt, app, console

IndexOpt = Annotated[Path, typer.Option("--index", help="index.jsonl of `anogen-data index` (real learn/eval shots).")]


@app.command("filter")
def filter_command(
    records: Annotated[Path, typer.Option("--records", help="records.jsonl of `generate --no-export`.")],
    index: IndexOpt,
    out: OutOpt,
    params: ParamsOpt = None,
    force: ForceOpt = False,
) -> None:
    """Score every synthetic sample (mask sanity, mask-image agreement, leakage, realism, duplicates)
    and write OUT/scores.jsonl (keep/drop with reasons) and OUT/filter_stats.json (pass rates).

    Thresholds come from the `filter:` section of params.yaml. `export --scores` writes only kept samples.

    Usage:

      anogen-data filter --records runs/bottle/synth/records.jsonl --index runs/bottle/index/index.jsonl --out runs/bottle/filter

      anogen-data filter --records runs/bottle/synth/records.jsonl --index runs/bottle/index/index.jsonl --out runs/bottle/filter --params params.yaml
    """
    from anogen_data.config import FilterConfig, resolve_config
    from anogen_data.stages.filter import run_filter

    config = resolve_config(FilterConfig, params, "filter", {})
    stats = run_filter(config, records, index, out, force=force)
    _print_stats(stats, out)


def _print_stats(stats: dict, out: Path) -> None:
    from rich.table import Table

    table = Table(title=f"{out}: kept {stats['kept']} of {stats['scored']}")
    table.add_column("filter")
    table.add_column("pass rate", justify="right")
    table.add_column("dropped", justify="right")
    for name, rate in stats["per_filter"].items():
        table.add_row(name, f"{rate:.1%}", str(stats["dropped_by"].get(name, 0)))
    console().print(table)


@app.command("quality")
def quality_command(
    version_dir: Annotated[Path, typer.Argument(help="A dataset version folder (datasets/NAME/vN).")],
    index: IndexOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="quality.json to write (numbers only, a DVC metric); "
                                      "backbone, version and config go to quality.info.json beside it.")],
    params: ParamsOpt = None,
) -> None:
    """Measure a dataset version against the held-out real anomalies: per defect type KID on
    EfficientNet-Lite0 features (kid_effnetlite0_image / _defect), diversity, mask-agreement statistics.

    Usage:

      anogen-data quality datasets/bottle/v1 --index runs/bottle/index/index.jsonl --out runs/bottle/quality.json
    """
    from anogen_data.config import QualityConfig, resolve_config
    from anogen_data.stages.quality import run_quality

    config = resolve_config(QualityConfig, params, "quality", {})
    report = run_quality(config, version_dir, index, out)
    _print_quality(report, out)


def _print_quality(report: dict, out: Path) -> None:
    from rich.table import Table

    def fmt(value, key="mean"):
        return "-" if value is None else f"{value[key] if isinstance(value, dict) else value:.4f}"

    table = Table(title=str(out))
    for column in ("defect type", "generated", "real eval", "KID image", "KID defect", "diversity", "mask IoU"):
        table.add_column(column)
    for name, row in [*report["per_defect"].items(), ("all", report["all"])]:
        table.add_row(name, str(row["n_generated"]), str(row["n_real_eval"]), fmt(row["kid_effnetlite0_image"]),
                      fmt(row["kid_effnetlite0_defect"]), fmt(row["diversity_effnetlite0_defect"]),
                      fmt(row["mask_change_iou"]))
    console().print(table)
