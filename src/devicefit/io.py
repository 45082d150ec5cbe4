"""Atomic file writes: outputs appear whole or not at all, and nothing the user had is lost."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed over ``path`` atomically.

    Works for files and folders (``.mlpackage``). On error the temporary is removed and ``path`` untouched.
    A folder at ``path`` is replaced only when it is a Core ML package (it holds ``Manifest.json``): a
    folder of anything else is the user's, and is never deleted.

    Raises:
        InputError: ``path`` is a folder that is not a Core ML package, or its folder cannot be written.
    """
    from devicefit.errors import InputError

    target = Path(path)
    if target.is_dir() and not target.is_symlink() and not (target / "Manifest.json").is_file():
        raise InputError(
            f"{target} is a folder that devicefit did not write; it is never replaced, even with --force: "
            "choose another path"
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as e:
        raise InputError(f"cannot write {target}: {e.strerror or e}; choose a writable folder") from None
    tmp = tmp_dir / (target.name + suffix)
    try:
        try:
            yield tmp
            if target.is_dir() and not target.is_symlink():
                backup = target.with_name(f".{target.name}.old-{os.getpid()}")
                os.replace(target, backup)
                os.replace(tmp, target)
                shutil.rmtree(backup, ignore_errors=True)
            else:
                os.replace(tmp, target)
        except OSError as e:
            # NOTE: a full disk or a file-size limit is the machine's state, not a devicefit bug: one line,
            # exit 2, and the previous output (if any) is still in place.
            raise InputError(
                f"cannot write {target}: {_write_failure(e)}; free some space or choose another folder "
                f"({target.name} was left as it was)"
            ) from None
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _write_failure(error: OSError) -> str:
    """What went wrong in one line; ``shutil.Error`` (copying a package) carries a list of failures."""
    if isinstance(error, shutil.Error) and error.args and isinstance(error.args[0], list) and error.args[0]:
        first = error.args[0][0]
        return str(first[-1]) if isinstance(first, tuple) else str(first)
    return error.strerror or str(error) or type(error).__name__


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_save_npz(path: str | os.PathLike[str], arrays: dict[str, Any]) -> None:
    import numpy as np

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def save_package(mlmodel: Any, path: str | os.PathLike[str], force: bool = False) -> Path:
    """Save a Core ML ML Program as ``.mlpackage`` atomically (never a partial package).

    Raises:
        InputError: ``path`` does not end in ``.mlpackage`` (an ML Program is a package).
        OutputExistsError: ``path`` exists and ``force`` is False.
    """
    import logging

    from devicefit.errors import InputError, OutputExistsError

    target = Path(path)
    if target.suffix != ".mlpackage":
        raise InputError(f"output path {str(path)!r} must end in .mlpackage (an ML Program is a package)")
    if target.exists() and not force:
        raise OutputExistsError(f"{target} exists; pass --force to overwrite it or choose another path")
    logger = logging.getLogger("coremltools")
    level = logger.level
    logger.setLevel(logging.ERROR)  # saving logs per-weight info lines
    try:
        with atomic_path(target) as tmp:
            mlmodel.save(str(tmp))
    finally:
        logger.setLevel(level)
    return target
