"""The one command-line vocabulary every subcommand shares (documented in docs/cli.md).

* ``--input NAME=FILE.npy`` (data) or ``--input NAME:SHAPE[:DTYPE]`` (a declaration, e.g. ``x:1x3x224x224``),
  parsed here only, by :func:`parse_input`.
* ``-o PATH``: the command's main artifact (a ``.mlpackage``, or the output folder of ``check``).
* ``--json PATH``: the machine-readable result; ``-`` writes it to stdout (:func:`write_text_output`).
* ``--target DEVICE`` (repeatable): Apple devices from the catalog, case-insensitive, with did-you-mean.
* ``--deployment-target iOS17``: case-insensitive (:func:`deployment_target`).
* ``--force``: overwrite existing outputs.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devicefit._suggest import did_you_mean
from devicefit.errors import InputError, OutputExistsError

if TYPE_CHECKING:
    import numpy as np

    from devicefit.sources import InputSpec

STDOUT = "-"
INPUT_HELP = "an input: NAME=FILE.npy (data) or NAME:SHAPE[:DTYPE] (declared, e.g. x:1x3x224x224:float32)"


@dataclass(frozen=True)
class InputArg:
    """One ``--input``: a data file (``NAME=FILE.npy``) or a declaration (``NAME:SHAPE[:DTYPE]``)."""

    name: str
    path: Path | None = None
    declared: InputSpec | None = None

    def array(self) -> np.ndarray | None:
        """The data of a ``NAME=FILE`` input (None for a declaration): a ``.npy``, or an ``.npz`` holding
        one array or one named like the input.

        Read by :func:`devicefit.sources.arrays.read_input_file`: a FIFO or device, an object array, or a
        header declaring more than ``$DEVICEFIT_MAX_INPUT_BYTES`` (default 256 MiB) is refused before reading.
        """
        if self.path is None:
            return None
        from devicefit.sources.arrays import read_input_file
        from devicefit.sources.spec import MAX_INPUT_BYTES_ENV, max_input_bytes

        return read_input_file(
            self.name, self.path, max_input_bytes(), f"raise the limit with ${MAX_INPUT_BYTES_ENV} (bytes)"
        )

    def spec(self) -> InputSpec:
        """The input's name, shape and dtype (read from the file for a data input)."""
        if self.declared is not None:
            return self.declared
        from devicefit.sources.spec import spec_of

        data = self.array()
        assert data is not None
        return spec_of(self.name, data)


def parse_input(text: str) -> InputArg:
    """Parse one ``--input`` in either form (see the module docstring).

    Raises:
        InputError: neither ``NAME=FILE`` nor ``NAME:SHAPE[:DTYPE]``.
    """
    name, sep, path = text.partition("=")
    if sep:
        if not name or not path:
            raise InputError(f"--input expects NAME=FILE.npy or NAME:SHAPE[:DTYPE], got {text!r}")
        return InputArg(name, path=Path(path))
    if ":" not in text:
        raise InputError(
            f"--input expects NAME=FILE.npy or NAME:SHAPE[:DTYPE] (e.g. x:1x3x224x224), got {text!r}"
        )
    from devicefit.sources import parse_input_arg

    spec = parse_input_arg(text)
    return InputArg(spec.name, declared=spec)


def parse_named_file(text: str) -> tuple[str, Path]:
    """``NAME=FILE`` -> (name, path) (kept for callers that only take data files)."""
    arg = parse_input(text)
    if arg.path is None:
        raise InputError(f"--input expects NAME=FILE.npy here, got {text!r}")
    return arg.name, arg.path


def input_specs(texts: list[str]) -> list[InputSpec] | None:
    """The declared (or file-derived) input specs of ``--input`` values; None when there are none."""
    return [parse_input(t).spec() for t in texts] or None


def input_arrays(texts: list[str]) -> dict[str, Any]:
    """Name -> array for the ``NAME=FILE.npy`` inputs (declarations are left out: callers fill them)."""
    out = {}
    for t in texts:
        arg = parse_input(t)
        data = arg.array()
        if data is not None:
            out[arg.name] = data
    return out


def add_input_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--input", "-i", dest="inputs", action="append", default=[], metavar="INPUT", help=INPUT_HELP
    )


def add_json_argument(p: argparse.ArgumentParser, what: str = "the result") -> None:
    p.add_argument("--json", default=None, metavar="PATH", help=f"write {what} as JSON to PATH ('-': stdout)")


def add_target_argument(p: argparse.ArgumentParser, what: str = "") -> None:
    p.add_argument(
        "--target",
        dest="devices",
        action="append",
        default=[],
        metavar="DEVICE",
        type=device_id,
        help="an Apple device from `devicefit devices --catalog` (repeatable)"
        + (f"; {what}" if what else ""),
    )


def device_id(text: str) -> str:
    """argparse type: a catalog device id (case-insensitive, by id or name), with did-you-mean on a typo."""
    from devicefit.analyze.catalog import get_device

    try:
        return get_device(text).id
    except InputError as e:
        # argparse turns ArgumentTypeError into a one-line usage error (exit 2)
        raise argparse.ArgumentTypeError(str(e)) from None


def count_at_least(least: int) -> Any:
    """argparse type: an integer of at least ``least`` (``--max-context -1`` reached the model code, which then
    blamed the prompt length)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {least}, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"expected an integer >= {least}, got {value}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its own messages
    return parse


def deployment_target(text: str) -> str:
    """argparse type: ``ios17`` / ``IOS17`` / ``iOS17`` -> ``"iOS17"``; a typo gets a did-you-mean."""
    from devicefit.convert.options import TARGETS

    for target in TARGETS:
        if text.strip().lower() == target.lower():
            return target
    raise argparse.ArgumentTypeError(
        f"unknown deployment target {text!r}{did_you_mean(text, TARGETS)}; choose one of {', '.join(TARGETS)}"
    )


def is_stdout(path: str | os.PathLike[str] | None) -> bool:
    return path is not None and str(path) == STDOUT


def check_output_path(
    path: str | os.PathLike[str],
    force: bool,
    flag: str = "output",
    package: bool | None = None,
    stdout_ok: bool = False,
) -> None:
    """Refuse an output path a command cannot or must not write, before any work is done.

    ``--force`` replaces only what devicefit itself writes: a regular file, or for a ``.mlpackage`` path a
    Core ML package folder (one holding ``Manifest.json``) - unless ``package=False`` says the output is a
    file (``run --out`` writes an ``.npz``: it must not replace a model that happens to sit at that path). A folder of other files, a FIFO or a device is
    never replaced, whatever the flags. The parent folder is probed by creating and removing a temporary
    file in it, since permission bits do not tell (``/proc``, read-only mounts, root). ``-`` is stdout where
    the output can go there (``stdout_ok``, the ``--json`` outputs); elsewhere it is refused, since it used to
    write (and overwrite, unchecked) a file named ``-``.

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is False.
        InputError: anything else that would make writing fail or lose the user's files.
    """
    import stat
    import tempfile

    from devicefit.sources.untrusted_files import shown

    if is_stdout(path):
        if stdout_ok:
            return
        raise InputError(
            f"{flag} cannot be '-': only --json can go to stdout; give a file path (./- for a file named '-')"
        )
    path = Path(path)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        st = None
    except (OSError, ValueError) as e:
        raise InputError(
            f"{flag} {shown(path)} cannot be used: {getattr(e, 'strerror', None) or e}"
        ) from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            if not (
                package is not False and path.suffix == ".mlpackage" and (path / "Manifest.json").is_file()
            ):
                raise InputError(
                    f"{flag} {shown(path)} is a folder, and --force never replaces a folder of other files; "
                    "pass the path of the file to write"
                )
        elif not stat.S_ISREG(st.st_mode):
            raise InputError(f"{flag} {shown(path)} exists and is not a regular file; choose another path")
        if not force:
            raise OutputExistsError(
                f"{shown(path)} exists; pass --force to overwrite it or choose another path"
            )
    parent = path.parent
    try:
        parent_st = os.stat(parent)
    except FileNotFoundError:
        raise InputError(f"output folder {shown(parent)} does not exist; create it first") from None
    except (OSError, ValueError) as e:
        reason = getattr(e, "strerror", None) or e
        raise InputError(f"output folder {shown(parent)} cannot be used: {reason}") from None
    if not stat.S_ISDIR(parent_st.st_mode):
        raise InputError(f"the parent of {flag} {shown(path)} is not a folder; choose another path")
    try:
        fd, probe = tempfile.mkstemp(prefix=".devicefit-probe-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise InputError(f"output folder {shown(parent)} is not writable: {e.strerror or e}") from None


def refuse_overlaps(
    outputs: dict[str, str | os.PathLike[str] | None], inputs: dict[str, str | os.PathLike[str] | None]
) -> None:
    """Refuse outputs that would overwrite each other or an input, before any work is done.

    ``--json r.json --html r.json`` wrote the JSON and then replaced it with the HTML; ``run m.mlpackage --out
    m.mlpackage --force`` replaced the user's model with the outputs. ``--force`` allows replacing what a
    previous run wrote, never the files this run reads or writes twice. Paths are compared after resolving
    symlinks; an output that is a folder holding an input counts as that input. ``None`` and ``-`` (stdout)
    are skipped.

    Args:
        outputs: flag (e.g. ``"--json"``) -> path.
        inputs: what names the input (e.g. ``"the model"``) -> path.

    Raises:
        InputError: naming both flags and the path.
    """
    from devicefit.sources.untrusted_files import shown

    def real(path: str | os.PathLike[str]) -> str:
        try:
            return os.path.realpath(path)
        except (OSError, ValueError):
            return os.path.abspath(path)

    seen: dict[str, str] = {}
    for flag, path in outputs.items():
        if path is None or is_stdout(path):
            continue
        key = real(path)
        if key in seen:
            raise InputError(
                f"{seen[key]} and {flag} are the same file {shown(path)}; one would overwrite the other: give "
                "each output its own path"
            )
        seen[key] = flag
    for what, path in inputs.items():
        if path is None or is_stdout(path):
            continue
        source = real(path)
        for key, flag in seen.items():
            if source == key or source.startswith(key.rstrip(os.sep) + os.sep):
                raise InputError(
                    f"{flag} {shown(key)} would overwrite {what} ({shown(path)}), which this command reads; "
                    "write the output elsewhere"
                )


def write_text_output(path: str | os.PathLike[str], text: str) -> bool:
    """Write ``text`` to ``path`` atomically, or to stdout for ``-``; True when a file was written."""
    if is_stdout(path):
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
        return False
    from devicefit.io import atomic_write_text

    atomic_write_text(Path(path), text)
    return True
