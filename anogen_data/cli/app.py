"""The Typer application, shared option aliases and error handling.

Commands live in sibling modules (one per stage group) and register themselves on ``app``. They are
thin: check options, resolve the config, call one function in ``anogen_data.stages``. Heavy modules
(torch, diffusers, datasets) are imported inside commands so that ``anogen-data --help`` stays fast.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from anogen_data import __version__

app = typer.Typer(
    add_completion=False,
    name="anogen-data",
    help=(
        "Turn a handful of real defect photos into a versioned synthetic-defect dataset "
        "(AnoGen, DualAnoDiff, CPU backends), and benchmark a detector on it.\n\n"
        "Usage:\n\n"
        "  anogen-data generate --category demo --n 100\n\n"
        "  anogen-data index --data /data/mvtec --category bottle --out runs/bottle/index"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Shared option aliases: defined once, used by every command that takes them.
CategoryOpt = Annotated[
    Optional[str], typer.Option("--category", "-c", help="Category folder name under --data, or 'demo'.")
]
DataOpt = Annotated[
    Optional[str],
    typer.Option("--data", "-d", help="Data root in MVTec AD layout (ROOT/<category>/train/good ...). Not needed for 'demo'."),
]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Random seed; same seed, same bytes.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]
ParamsOpt = Annotated[
    Optional[Path],
    typer.Option("--params", help="params.yaml whose stage section overrides the defaults (CLI flags win)."),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing output.")]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"anogen-data {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks (also ANOGEN_DEBUG=1).")] = False,
) -> None:
    if debug:
        os.environ["ANOGEN_DEBUG"] = "1"
    from anogen_data.files import set_command_name

    set_command_name(f"anogen-data {ctx.invoked_subcommand}" if ctx.invoked_subcommand else "anogen-data")


class _StderrLines(logging.Handler):
    """Library warnings (a dropped duplicate, a removed stale folder) as one ``warning: ...`` line on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"{record.levelname.lower()}: {record.getMessage()}\n")
        except Exception:  # noqa: BLE001 - logging must never break the command
            self.handleError(record)


def _warnings_to_stderr() -> None:
    logger = logging.getLogger("anogen_data")
    if not any(isinstance(h, _StderrLines) for h in logger.handlers):
        handler = _StderrLines(logging.WARNING)
        logger.addHandler(handler)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors print one line and exit 1; usage errors exit 2."""
    from anogen_data.errors import AnogenError

    _warnings_to_stderr()

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        app(args=argv, prog_name="anogen-data")
    except AnogenError as exc:
        if os.environ.get("ANOGEN_DEBUG") == "1":
            raise
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.secho(interrupted_line(args), err=True)
        sys.exit(130)
    except SystemExit as exc:  # Typer turns Ctrl-C into a silent exit 130
        if exc.code == 130 and _from_interrupt(exc):
            typer.secho(interrupted_line(args), err=True)
        raise


def _from_interrupt(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def interrupted_line(args: list[str]) -> str:
    """The one line Ctrl-C prints: what was kept and the command to rerun."""
    import shlex

    words = [str(a) for a in args]
    command = next((w for w in words if not w.startswith("-")), "")
    if command == "generate":
        resume = words if "--resume" in words else [*words, "--resume"]
        return ("interrupted; finished samples are kept in the .partial folder; continue with: "
                f"{shlex.join(['anogen-data', *resume])}")
    if command == "push":
        return f"interrupted; rerun: {shlex.join(['anogen-data', *words])}"
    return f"interrupted; no output was written; rerun: {shlex.join(['anogen-data', *words])}"
