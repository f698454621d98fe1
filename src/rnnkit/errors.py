"""Errors that rnnkit raises on bad input.

Every loader raises :class:`DataError` (or a subclass) naming the file, the line, record or
field, what it found and what it expected. The CLI prints that one line and exits with status 2.
"""

from __future__ import annotations


class RnnkitError(Exception):
    """Base class of the errors the CLI reports as one line with exit status 2."""


class DataError(RnnkitError, ValueError):
    """Input data is malformed: the message names the file, the place in it, and what was expected."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line


class CheckpointError(RnnkitError):
    """A checkpoint or run folder is missing, truncated, unsafe or not an rnnkit checkpoint."""


class ConfigError(RnnkitError, ValueError):
    """A configuration value is invalid (the message names the field and what was expected)."""
