"""The Typer application, shared option aliases, CLI conventions and error handling.

Commands live in sibling modules (one per stage group) and register themselves on ``app``. They are
thin: check options, resolve the config, call one function in ``anogen_data.stages``. Heavy modules
(torch, diffusers, datasets) are imported inside commands so that ``anogen-data --help`` stays fast.

Conventions every command gets from :class:`Typer` (so no command can forget them): ``-v/--verbose`` and
``-q/--quiet`` (quiet: no tables, bars or status lines; errors still print), shell completion, flags shown
without a ``<bool>`` type, and ``--help`` defaults taken from the stage's config dataclass
(``@app.command(..., defaults=GenerateConfig)``): the options themselves default to None so that
``params.yaml`` can still override a value the user did not type.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from anogen_data import __version__
from anogen_data.cli.choices import DEVICE_OPTION, DTYPE_OPTION

VerboseOpt = Annotated[
    int, typer.Option("--verbose", "-v", count=True, show_default=False, help="More log lines (-vv: debug, libraries too).")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No tables, progress bars or status lines; errors still print.")]
_QUIET_ENV = ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS")
_state = {"quiet": False, "env_set": []}


def set_verbosity(verbose: int = 0, quiet: bool = False) -> None:
    """Apply -v/-q for this invocation: rich output, tqdm/HF bars and log levels (errors always print)."""
    if verbose and quiet:
        raise typer.BadParameter("-v and -q contradict each other; pass one of them", param_hint="'-q'")
    _state["quiet"] = quiet
    for name in _state["env_set"]:  # undo the previous in-process call's switches only
        os.environ.pop(name, None)
    _state["env_set"] = [name for name in _QUIET_ENV if quiet and name not in os.environ]
    for name in _state["env_set"]:
        os.environ[name] = "1"
    import rich

    rich.get_console().quiet = quiet  # progress bars made without a console use this one
    if quiet:
        level = logging.ERROR
    else:
        level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    ours = logging.getLogger("anogen_data")
    ours.setLevel(level)
    if not ours.handlers:
        handler = _StderrHandler()
        handler.setFormatter(_LineFormatter())
        ours.addHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)


class _LineFormatter(logging.Formatter):
    """One line per record: ``warning: <message>`` (``info``/``debug`` lines name their module)."""

    def format(self, record: logging.LogRecord) -> str:
        where = "" if record.levelno >= logging.WARNING else f" {record.name}"
        return f"{record.levelname.lower()}{where}: {record.getMessage()}"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at each record (redirects, pytest's capture), not the one at set-up."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def is_quiet() -> bool:
    """True while the running command was given -q."""
    return _state["quiet"]


def console():
    """A rich console for tables and status lines; silent under -q."""
    from rich.console import Console

    return Console(quiet=is_quiet())


def say(message: str) -> None:
    """A status line on stdout ("wrote ..."); silent under -q."""
    if not is_quiet():
        typer.echo(message)


def _with_verbosity(func, defaults_from=None):
    """``func`` with -v/-q appended; defaults of options that map to ``defaults_from`` fields shown in --help."""
    signature = inspect.signature(func, eval_str=True)
    shown = {f.name: f.default for f in dataclasses.fields(defaults_from)} if defaults_from else {}
    shown.pop("data", None)  # "demo" there means "the data root set once" (see DataOpt), not a folder
    params = []
    for param in signature.parameters.values():
        if param.name in shown and param.default is None and shown[param.name] is not None:
            param = param.replace(annotation=_show_default(param.annotation, shown[param.name]))
        params.append(param)
    params += [
        inspect.Parameter("verbose", inspect.Parameter.KEYWORD_ONLY, default=0, annotation=VerboseOpt),
        inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=QuietOpt),
    ]

    @functools.wraps(func)
    def command(*args, verbose: int = 0, quiet: bool = False, **kwargs):
        set_verbosity(verbose, quiet)
        return func(*args, **kwargs)

    command.__signature__ = signature.replace(parameters=params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command


def _show_default(annotation, value: Any):
    """The Annotated option with ``show_default`` set to the config default (options default to None)."""
    import copy

    base, *extras = annotation.__metadata__
    info = copy.copy(base)
    if info.show_default is True:  # typer's default; False or a text set by the option itself is kept
        info.show_default = str(value).lower() if isinstance(value, bool) else str(value)
    return Annotated[(annotation.__origin__, info, *extras)]


def _no_flag_metavar(params) -> None:
    """Flags and counters take no value: show no ``<bool>``/``<int>`` type beside them in --help."""
    for param in params:
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            param.metavar = ""


class _Command(typer.core.TyperCommand):
    def get_params(self, ctx):
        params = super().get_params(ctx)
        _no_flag_metavar(params)
        return params


class _Group(typer.core.TyperGroup):
    def get_params(self, ctx):
        params = super().get_params(ctx)
        _no_flag_metavar(params)
        return params


class Typer(typer.Typer):
    """typer.Typer whose commands all take -v/-q and show the defaults of ``defaults=ConfigClass`` fields."""

    def __init__(self, **kwargs):
        super().__init__(cls=kwargs.pop("cls", _Group), **kwargs)

    def command(self, name: str | None = None, *, defaults: type | None = None, **kwargs):
        register = super().command(name, cls=kwargs.pop("cls", _Command), **kwargs)

        def decorator(func):
            register(_with_verbosity(func, defaults))
            return func

        return decorator


app = Typer(
    add_completion=True,
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
    typer.Option("--data", "-d", help="Data root in MVTec AD layout (ROOT/<category>/train/good ...). Default: data: in "
                 "--params, else $ANOGEN_DATA, else <cache>/data (where `download` writes). Not needed for 'demo'."),
]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Random seed; same seed, same bytes.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]
ParamsOpt = Annotated[
    Optional[Path],
    typer.Option("--params", help="params.yaml whose stage section overrides the defaults (CLI flags win)."),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing output.")]
DeviceOpt = Annotated[
    Optional[str],
    typer.Option("--device", **DEVICE_OPTION, help="auto: cuda when present; cuda:N picks a GPU."),
]
DtypeOpt = Annotated[
    Optional[str],
    typer.Option("--dtype", **DTYPE_OPTION, help="auto: half precision on CUDA, fp32 on CPU (float16/bfloat16/float32 also read)."),
]


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


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors print one line and exit 1; usage errors exit 2."""
    from anogen_data.errors import AnogenError

    set_verbosity()  # warnings print as one line even before a command parses its -v/-q

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
