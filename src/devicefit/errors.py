"""Errors a user can act on.

Every error here carries a one-line message that says what was wrong, what was expected and what to do.
The CLI prints the message and exits with code 2 (bad input) without a traceback unless ``--debug``.
"""

from __future__ import annotations


class DevicefitError(Exception):
    """Base class: an error caused by the user's input, with a one-line actionable message."""

    exit_code = 2


class InputError(DevicefitError, ValueError):
    """Wrong input names, shapes, dtypes or values."""


class ModelLoadError(DevicefitError):
    """A model file that is missing, truncated, corrupted or of an unsupported kind."""


class KernelMissingError(DevicefitError, NotImplementedError):
    """The interpreter has no kernel for an op of the program."""


class OutputExistsError(DevicefitError, FileExistsError):
    """An output path exists and ``--force`` was not given."""


def first_line(error: BaseException | str, limit: int | None = None) -> str:
    """The first line of an error message, for one-line reports.

    An exception with an empty message gives its type name; an empty string gives "". With ``limit``, a
    longer line is cut to ``limit`` characters and ends in "...".
    """
    lines = str(error).strip().splitlines()
    if lines:
        line = lines[0].strip()
    else:
        line = type(error).__name__ if isinstance(error, BaseException) else ""
    if limit is not None and len(line) > limit:
        return line[:limit] + "..."
    return line
