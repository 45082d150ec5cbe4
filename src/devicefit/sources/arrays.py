"""Reading ``.npy`` / ``.npz`` files that nothing vouches for: numeric arrays only, sizes bounded first.

Every array file a user names (``--input NAME=FILE``, ``--data``) is read here, so that each command refuses
the same things the same way, with one-line :class:`InputError` messages:

* anything but a regular file (a FIFO would block the read forever, ``/dev/zero`` never ends): checked with
  ``stat`` before opening, and again with ``fstat`` on what was opened (``O_NONBLOCK``);
* object arrays (reading them unpickles, i.e. runs code): ``allow_pickle`` is never set;
* an array whose header declares more bytes than the limit, or more than the file (or zip member) holds:
  refused from the header, before numpy allocates anything. In an ``.npz`` the declared sizes of all the
  arrays read count against one limit, so a zip bomb (gigabytes of zeros compressed to a few megabytes) is
  refused before it is decompressed.
"""

from __future__ import annotations

import math
import os
import stat
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from devicefit.errors import InputError, first_line
from devicefit.sources.untrusted_files import shown as _shown

NPY_SUFFIX = ".npy"


@contextmanager
def open_regular(path: Path, what: str) -> Iterator[IO[bytes]]:
    """``path`` opened for reading after checking that it is a regular file (never blocks).

    Raises:
        InputError: missing, not a regular file (a folder, FIFO, device, socket), or unreadable.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{what} not found: {_shown(path)}") from None
    except (OSError, ValueError) as e:
        reason = getattr(e, "strerror", None) or e
        raise InputError(f"{what} {_shown(path)} cannot be read: {reason}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{what} {_shown(path)} is not a regular file; pass a .npy or .npz file")
    try:
        # NOTE: O_NONBLOCK: a file swapped for a FIFO after the stat must not block the open either.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise InputError(f"{what} {_shown(path)} cannot be read: {e.strerror or e}") from None
    f = os.fdopen(fd, "rb")
    with f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(f"{what} {_shown(path)} changed while being opened; try again")
        yield f


def read_header(f: IO[bytes], what: str, data_bytes: int, max_bytes: int, remedy: str, used: int = 0) -> int:
    """Check the ``.npy`` header at ``f``'s position; the bytes its array needs.

    Args:
        f: positioned at the magic string; left just after the header.
        what: names the array in messages (e.g. ``"data.npz member 'x'"``).
        data_bytes: bytes from the start of ``f`` available for header plus data.
        max_bytes: the largest array allowed.
        remedy: what to do when the array is over ``max_bytes`` (how to raise the limit).
        used: bytes already taken from ``max_bytes`` by arrays read before this one.

    Raises:
        InputError: not a .npy header, an object array, over ``max_bytes``, or more than the file holds.
    """
    fmt: Any = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _fortran, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _fortran, dtype = fmt.read_array_header_2_0(f)
        elif version == (3, 0):  # utf-8 field names: no public reader
            shape, _fortran, dtype = _private_header_reader()(f, version)
        else:
            raise ValueError(f"unknown .npy format version {version[0]}.{version[1]}")
    except (ValueError, OSError, EOFError, SyntaxError, zipfile.BadZipFile) as e:
        raise InputError(
            f"{what} is not a .npy array ({first_line(e, 200)}); pass numeric .npy data"
        ) from None
    if dtype.hasobject:
        raise InputError(
            f"{what} holds an object array; devicefit reads numeric arrays only (no pickles: reading "
            "objects would run code from the file)"
        )
    nbytes = math.prod(int(d) for d in shape) * dtype.itemsize  # Python ints: no wrap-around
    described = f"a {'x'.join(map(str, shape)) or 'scalar'} {dtype} array ({nbytes} bytes)"
    if used + nbytes > max_bytes:
        after = f" after {used} bytes of arrays before it" if used else ""
        raise InputError(f"{what} declares {described}{after}, over the {max_bytes}-byte limit; {remedy}")
    if nbytes > data_bytes - f.tell():
        raise InputError(
            f"{what} declares {described} but holds only {max(data_bytes - f.tell(), 0)} bytes of data; the "
            "file is truncated or corrupted"
        )
    return nbytes


def _private_header_reader() -> Any:
    reader = getattr(np.lib.format, "_read_array_header", None)
    if reader is None:  # numpy 2 moved the implementation to a private module
        from numpy.lib import _format_impl

        reader = vars(_format_impl)["_read_array_header"]
    return reader


def read_npy(path: Path, what: str, max_bytes: int, remedy: str, used: int = 0) -> np.ndarray:
    """The array of a ``.npy`` file (see the module docstring for what is refused; ``used``: see
    :func:`read_header`)."""
    with open_regular(path, what) as f:
        size = os.fstat(f.fileno()).st_size
        read_header(f, f"{what} {_shown(path)}", size, max_bytes, remedy, used)
        f.seek(0)
        return _read_array(f, f"{what} {_shown(path)}")


def npz_keys(path: Path, what: str) -> list[str]:
    """The array names of an ``.npz`` (its ``.npy`` members, without the suffix)."""
    with open_regular(path, what) as f, _zip(f, what, path) as archive:
        return [n[: -len(NPY_SUFFIX)] for n in archive.namelist() if n.endswith(NPY_SUFFIX)]


def read_npz(
    path: Path, what: str, max_bytes: int, remedy: str, keys: list[str] | None = None
) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` (``keys`` only, when given), their declared sizes summed against ``max_bytes``.

    Every header is checked before any array is decompressed.
    """
    with open_regular(path, what) as f, _zip(f, what, path) as archive:
        members = {n[: -len(NPY_SUFFIX)]: n for n in archive.namelist() if n.endswith(NPY_SUFFIX)}
        wanted = list(members) if keys is None else [k for k in keys if k in members]
        used = 0
        for key in wanted:
            info = archive.getinfo(members[key])
            member_what = f"{what} {_shown(path)} (array {key!r})"
            try:
                with archive.open(info) as member:
                    used += read_header(member, member_what, info.file_size, max_bytes, remedy, used)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as e:
                raise InputError(f"{member_what} cannot be read: {first_line(e, 200)}") from None
        out = {}
        for key in wanted:
            member_what = f"{what} {_shown(path)} (array {key!r})"
            try:
                with archive.open(members[key]) as member:
                    out[key] = _read_array(member, member_what)
            except InputError:
                raise
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as e:
                raise InputError(f"{member_what} cannot be read: {first_line(e, 200)}") from None
        return out


@contextmanager
def _zip(f: IO[bytes], what: str, path: Path) -> Iterator[zipfile.ZipFile]:
    try:
        archive = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise InputError(
            f"{what} {_shown(path)} is not a readable .npz archive ({first_line(e, 200)}); pass .npy or .npz"
        ) from None
    with archive:
        yield archive


def _read_array(f: IO[bytes], what: str) -> np.ndarray:
    try:
        return np.lib.format.read_array(f, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:  # e.g. a CRC error in a zip member
        raise InputError(f"{what} cannot be read: {first_line(e, 200)}; the file is corrupted") from None


def read_input_file(name: str, path: Path, max_bytes: int, remedy: str) -> np.ndarray:
    """The array for model input ``name`` from a ``.npy``, or an ``.npz`` holding one array or one named ``name``.

    Raises:
        InputError: see the module docstring; an ``.npz`` with several arrays, none named ``name``.
    """
    what = f"input {name!r} file"
    if not is_npz(path):
        return read_npy(path, what, max_bytes, remedy)
    keys = npz_keys(path, what)
    if not keys:  # a zip without .npy members: a torch.save / TorchScript file, a .pt2, any other zip
        raise InputError(
            f"{name}={_shown(path)} is a zip archive holding no .npy arrays (a model file?), not input data; pass "
            f"a .npy file (numpy.save) or an .npz with an array named {name!r}"
        )
    if name not in keys and len(keys) != 1:
        raise InputError(
            f"{name}={_shown(path)} is an .npz archive with arrays {', '.join(keys) or '(none)'} but none named "
            f"{name!r}; pass a .npy file per input, or use `devicefit check --data FILE.npz`"
        )
    key = name if name in keys else keys[0]
    return read_npz(path, what, max_bytes, remedy, [key])[key]


def is_npz(path: Path) -> bool:
    """True when ``path`` is a zip archive (an ``.npz``), whatever its name; False for anything unreadable."""
    try:
        with open_regular(path, "array file") as f:
            return zipfile.is_zipfile(f)
    except InputError:
        return False
