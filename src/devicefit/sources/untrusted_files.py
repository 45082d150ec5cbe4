"""Reading files that nothing vouches for: paths kept inside a root, special files refused, sizes bounded.

A model package is user input. Every path it names is resolved (symlinks included) and must stay inside the
package; only regular files are opened, and they are checked with ``stat`` *before* opening, so a FIFO,
a device such as ``/dev/zero`` or a directory is refused without blocking or reading; a file over its size
limit is refused before any byte is read. Every failure is a :class:`ModelLoadError` with one line.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from devicefit.errors import ModelLoadError, printable

_SHOWN_PATH_CHARS = 160


def shown(path: str | os.PathLike[str]) -> str:
    """A path for a one-line message: shortened in the middle when absurdly long."""
    text = printable(os.fspath(path))  # a name with a newline must not break a one-line message
    if len(text) <= _SHOWN_PATH_CHARS:
        return text
    half = _SHOWN_PATH_CHARS // 2
    return f"{text[:half]}...({len(text)} characters)...{text[-half:]}"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def stat_path(path: Path, what: str) -> os.stat_result | None:
    """``os.stat`` of ``path`` (following symlinks); None when it does not exist.

    Raises:
        ModelLoadError: the path cannot be examined (name too long, permission, a loop of symlinks...).
    """
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as e:  # ValueError: an embedded NUL byte
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ModelLoadError(f"cannot examine {what} {shown(path)}: {reason}") from None


def require_file_or_folder(path: Path, what: str) -> os.stat_result:
    """``os.stat`` of an existing model path that is a folder or a regular file, never anything that blocks.

    Raises:
        ModelLoadError: missing, or a FIFO, device or socket (opening one would block or never end).
    """
    st = stat_path(path, what)
    if st is None:
        raise ModelLoadError(f"{what} not found: {shown(path)}")
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise ModelLoadError(
            f"{what} {shown(path)} is {_kind(st.st_mode)}, not a model file or folder; pass the model's path"
        )
    return st


def inside(root: Path, rel: str, what: str) -> Path:
    """``root / rel`` resolved, refusing a path that is absolute, climbs with ``..`` or leads out by a symlink.

    Raises:
        ModelLoadError: the path escapes ``root`` or cannot be resolved.
    """
    if not rel or "\x00" in rel or os.path.isabs(rel) or ".." in Path(rel).parts:
        raise ModelLoadError(
            f"{what} path {rel!r} must be a relative path inside {shown(root)}; the package is corrupted or "
            "crafted, re-export it"
        )
    try:
        real_root = os.path.realpath(root)
        real = os.path.realpath(root / rel)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot resolve {what} {shown(root / rel)}: {e}") from None
    if os.path.commonpath([real_root, real]) != real_root:
        raise ModelLoadError(
            f"{what} {shown(root / rel)} leads outside {shown(root)} (to {shown(real)}); the package is "
            "corrupted or crafted, re-export it"
        )
    return Path(real)


def require_regular(path: Path, what: str, limit: int) -> int:
    """Size of ``path`` after checking it is an existing regular file of at most ``limit`` bytes.

    Raises:
        ModelLoadError: missing, not a regular file, or over ``limit``.
    """
    st = stat_path(path, what)
    if st is None:
        raise ModelLoadError(f"{what} {shown(path)} is missing; the package is incomplete, re-export it")
    if not stat.S_ISREG(st.st_mode):
        raise ModelLoadError(
            f"{what} {shown(path)} is {_kind(st.st_mode)}, not a file; the package is corrupted"
        )
    if st.st_size > limit:
        raise ModelLoadError(
            f"{what} {shown(path)} is {st.st_size} bytes, over the {limit}-byte limit for such a file; the "
            "package is corrupted"
        )
    return st.st_size


def read_bounded(path: Path, what: str, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (checked before and after opening).

    Raises:
        ModelLoadError: see :func:`require_regular`, or a read error.
    """
    require_regular(path, what, limit)
    try:
        # NOTE: O_NONBLOCK so that a file swapped for a FIFO after the stat cannot block the open;
        # fstat then re-checks what was actually opened.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise ModelLoadError(f"cannot open {what} {shown(path)}: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            raise ModelLoadError(f"{what} {shown(path)} changed while being read; try again")
        chunks = []
        remaining = limit + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except OSError as e:
        raise ModelLoadError(f"cannot read {what} {shown(path)}: {e.strerror or e}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise ModelLoadError(f"{what} {shown(path)} grew past its {limit}-byte limit while being read")
    return data


# Text files a user hands over (prompts, held-out text, a character vocabulary) are read whole: bounded, so
# that a mistyped path to a disk image is refused instead of filling the memory.
TEXT_MAX_BYTES = 64 << 20


def read_user_text(path: Path, what: str, limit: int = TEXT_MAX_BYTES) -> str:
    """The UTF-8 text of a user's regular file of at most ``limit`` bytes.

    Raises:
        InputError: missing, not a regular file (a folder, FIFO, device), over ``limit``, unreadable or not UTF-8.
    """
    from devicefit.errors import InputError

    try:
        st = stat_path(path, what)
    except ModelLoadError as e:
        raise InputError(str(e)) from None
    if st is None:
        raise InputError(f"{what} not found: {shown(path)}")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{what} {shown(path)} is {_kind(st.st_mode)}, not a text file; pass a text file")
    if st.st_size > limit:
        raise InputError(
            f"{what} {shown(path)} is {st.st_size:,} bytes, over the {limit:,}-byte limit for a text file; pass a "
            "smaller file"
        )
    try:
        data = read_bounded(path, what, limit)
    except ModelLoadError as e:
        raise InputError(str(e)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(
            f"{what} {shown(path)} is not UTF-8 text (byte {e.start}: {data[e.start : e.start + 1]!r}); save it as "
            "UTF-8"
        ) from None
