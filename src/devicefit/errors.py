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


def printable(text: str) -> str:
    """``text`` with control characters escaped (a newline as ``\\n``, ESC as ``\\x1b``), so that a message
    quoting a file name stays one line and cannot drive the terminal: names come from users and packages."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    special = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if ch in special:
        return special[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


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


def torchscript_cause(text: str) -> str | None:
    """The error itself from a TorchScript interpreter failure, or None for any other message.

    torch words those as "The following operation failed in the TorchScript interpreter." and a serialized
    traceback, and puts what failed ("RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x5 and 4x2)")
    on the last line; that line, without its exception-type prefix, is what a user can act on.
    """
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) < 2 or "TorchScript interpreter" not in lines[0]:
        return None
    last = lines[-1]
    head, sep, rest = last.partition(": ")
    return rest if sep and head.isidentifier() and head.endswith(("Error", "Exception")) else last
