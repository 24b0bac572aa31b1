"""Typer CLI ``anogen-data``: one thin command per stage (see ``app.py`` for shared options)."""

from anogen_data.cli.app import app, main

# Each module registers its commands on ``app`` when imported (order = order in --help).
from anogen_data.cli import index, concepts, generate, filter, export, detector, download  # noqa: E402,F401

__all__ = ["app", "main"]
