"""Errors a user can fix: the CLI prints the message on one line and exits 1."""


class AnogenError(Exception):
    """Bad input or state the user can fix. The message says what, which file, and what to do."""
