"""CLI commands ``export``, ``verify`` and ``push``: write, check and publish immutable dataset versions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from anogen_data.cli.app import OutOpt, ParamsOpt, app, console, say
from anogen_data.config import ExportConfig


@app.command("export", defaults=ExportConfig)
def export_command(
    index: Annotated[Path, typer.Option("--index", help="index.jsonl of `anogen-data index`.")],
    out: OutOpt,
    records: Annotated[
        Optional[Path], typer.Option("--records", help="records.jsonl of `generate --no-export` (synthetic images).")
    ] = None,
    scores: Annotated[
        Optional[Path], typer.Option("--scores", help="scores.jsonl of `anogen-data filter`: only kept records are written.")
    ] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Dataset name (default: the category).")] = None,
    version: Annotated[
        Optional[int], typer.Option("--version", min=1, help="Write v<N>; default the next free number. Never overwrites.")
    ] = None,
    concepts: Annotated[
        Optional[Path], typer.Option("--concepts", help="Learned concepts folder, hashed into the manifest lineage.")
    ] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, help="Threads encoding images.")] = None,
    stats_out: Annotated[
        Optional[Path], typer.Option("--stats-out", help="Also write the numbers of stats.json here (a git-tracked DVC metric).")
    ] = None,
    show_dropped: Annotated[
        bool, typer.Option("--show-dropped", help="Draw the records --scores drops (first reason as caption) on "
                           "dropped_sheet.png in the version; they are still not written to the dataset.")
    ] = False,
    box_labels: Annotated[
        bool, typer.Option("--box-labels", help="Write every synthetic record as a box label (mask_quality: box, "
                           "the mask's filled box): AnoGen's weak labels from any backend.")
    ] = False,
    params: ParamsOpt = None,
) -> None:
    """Write an immutable dataset version OUT/NAME/vN: MVTec tree, COCO RLE, HF parquet, stats, card, manifest.

    Real images come from the index (train -> mvtec/<c>/train/good; eval -> mvtec/<c>/test/); learn shots and
    synthetic records go to synthetic/<c>/images/<defect>/ (masks in synthetic/<c>/masks/<defect>/), so
    mvtec/<c>/ is strictly MVTec AD. The version appears only when complete.

    Usage:

      anogen-data export --index runs/bottle/index/index.jsonl --out datasets

      anogen-data export --index runs/bottle/index/index.jsonl --records runs/bottle/synth/records.jsonl --scores runs/bottle/filter/scores.jsonl --out datasets --name bottle --version 1

      anogen-data export --index runs/bottle/index/index.jsonl --records runs/bottle/synth/records.jsonl --scores runs/bottle/filter/scores.jsonl --out datasets --show-dropped

      anogen-data export --index runs/bottle/index/index.jsonl --out datasets --name bottle --version 1 --stats-out metrics/bottle/stats.json

      anogen-data export --index runs/bottle/index/index.jsonl --records runs/bottle/synth/records.jsonl --out datasets --name bottle-box --box-labels
    """
    from anogen_data.config import resolve_config
    from anogen_data.errors import AnogenError
    from anogen_data.stages.export import run_export

    if box_labels and records is None:
        raise AnogenError("--box-labels needs --records: only synthetic records become box labels")
    if show_dropped and scores is None:
        raise AnogenError("--show-dropped needs --scores: the dropped records and their reasons come from the scores")
    overrides = {"workers": workers, "show_dropped": True if show_dropped else None}  # off: params.yaml decides
    config = resolve_config(ExportConfig, params, "export", overrides)
    folder = run_export(config, index, out, records_file=records, scores_file=scores, name=name, version=version,
                        concepts_dir=concepts, stats_out=stats_out, box_labels=box_labels)
    _print_summary(folder)


def _print_summary(folder: Path) -> None:
    import json

    from rich.table import Table

    stats = json.loads((folder / "stats.json").read_text(encoding="utf-8"))
    table = Table(title=str(folder))
    for column in ("split", "defect type", "real", "synthetic"):
        table.add_column(column, justify="left" if column in ("split", "defect type") else "right")
    for split, defects in stats["counts"].items():
        for defect, sources in defects.items():
            table.add_row(split, defect, str(sources.get("real", 0)), str(sources.get("synthetic", 0)))
    out = console()
    out.print(table)
    out.print(f"wrote {folder}")


@app.command("verify")
def verify_command(
    version_dir: Annotated[Path, typer.Argument(help="A dataset version folder, e.g. datasets/bottle/v1.")],
) -> None:
    """Re-hash every file of a version against its manifest.json; exit 1 on any change.

    Usage:

      anogen-data verify datasets/bottle/v1
    """
    from anogen_data.errors import AnogenError
    from anogen_data.writers.manifest import verify_version

    problems = verify_version(version_dir)
    if problems:
        for line in problems:
            typer.echo(line, err=True)
        raise AnogenError(f"{version_dir} changed since it was written: {len(problems)} problem(s) listed above")
    say(f"ok: {version_dir} matches its manifest")


@app.command("push")
def push_command(
    version_dir: Annotated[Path, typer.Argument(help="A dataset version folder, e.g. datasets/bottle/v1.")],
    repo_id: Annotated[str, typer.Option("--repo-id", help="Hub dataset repo ORG/NAME.")],
    private: Annotated[bool, typer.Option("--private", help="Create the repo private.")] = False,
    revision: Annotated[
        Optional[str], typer.Option("--revision", help="Branch to commit to, as in `hf upload` (created when "
                                    "missing; default main).")
    ] = None,
    tag: Annotated[Optional[str], typer.Option("--tag", help="Tag naming the version's commit (default v<N>).")] = None,
    include_trees: Annotated[
        bool, typer.Option("--include-trees", help="Also upload the MVTec and synthetic trees, COCO files, stats, "
                           "records and manifest (anomalib's readers need the trees).")
    ] = False,
) -> None:
    """Commit exactly one version to a Hub dataset repo (its hf/ folder at the root) and tag the commit.

    The commit adds every file of the version and deletes every other file of the branch (the Hub's
    .gitattributes stays), so each tag holds one version only. Unlike `hf upload`, the version tag is
    a separate --tag (default v<N>); --revision is the branch, as there. Needs `hf auth login` or
    HF_TOKEN; offline or unauthenticated it prints one line and exits 1.

    Usage:

      anogen-data push datasets/bottle/v1 --repo-id my-org/bottle-defects

      anogen-data push datasets/bottle/v2 --repo-id my-org/bottle-defects --private --include-trees

      anogen-data push datasets/bottle/v3 --repo-id my-org/bottle-defects --revision dev --tag v3-rc1
    """
    from anogen_data.writers.push import push_version

    tag = push_version(version_dir, repo_id, private=private, revision=revision, tag=tag, include_trees=include_trees)
    say(f"pushed {version_dir} to https://huggingface.co/datasets/{repo_id} (tag {tag})")
