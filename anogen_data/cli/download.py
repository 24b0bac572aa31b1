"""CLI group ``anogen-data download``: fetch a public dataset category into the data root, on request only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from anogen_data.cli.app import Typer, app, console, is_quiet, say

download_app = Typer(help="Fetch a public dataset category into the data root (verified, resumable).", no_args_is_help=True)
app.add_typer(download_app, name="download")


@download_app.command("mvtec")
def mvtec_command(
    category: Annotated[str, typer.Option("--category", "-c", help="An MVTec AD category, e.g. screw, bottle, grid.")],
    data: Annotated[
        Optional[Path],
        typer.Option("--data", "-d", help="Data root to extract into (default: $ANOGEN_DATA, else <cache>/data)."),
    ] = None,
) -> None:
    """Download MVTec AD (the archive and sha256 anomalib uses), verify it, extract one category into the data root.

    The verified archive stays in <cache>/downloads ($ANOGEN_CACHE), so the next category is only extracted.
    An interrupted transfer resumes when the same command runs again. MVTec AD is CC BY-NC-SA 4.0.

    Usage:

      anogen-data download mvtec --category screw

      ANOGEN_DATA=/data/mvtec anogen-data download mvtec --category bottle

      anogen-data download mvtec --category grid --data /data/mvtec
    """
    from anogen_data.data.download import LICENSE_LINE, check_category, default_data_root, download_mvtec

    check_category(category)  # before the licence line: a bad name gets one line
    root = (data or default_data_root()).expanduser()
    typer.echo(LICENSE_LINE, err=True)  # the licence line prints even under -q
    if is_quiet():
        target = download_mvtec(category, root)
    else:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

        columns = (TextColumn("mvtec"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console(), transient=True) as progress:
            task = progress.add_task("mvtec", total=None)

            def advance(done: int, total: int | None) -> None:
                progress.update(task, completed=done, total=total)

            target = download_mvtec(category, root, on_progress=advance)
    say(f"ready: {target}")
