"""CLI commands (see module docstring of each command)."""

from anogen_data.cli.app import app  # noqa: F401
