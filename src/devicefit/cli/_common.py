"""Argument helpers shared by subcommands."""

from __future__ import annotations

import os
from pathlib import Path

from devicefit.errors import InputError, OutputExistsError


def parse_named_file(text: str) -> tuple[str, Path]:
    """``NAME=FILE`` -> (name, path)."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise InputError(f"--input expects NAME=FILE.npy, got {text!r}")
    return name, Path(path)


def check_output_path(path: Path, force: bool) -> None:
    """Refuse to overwrite an existing output unless ``--force``."""
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists; pass --force to overwrite it or choose another path")
    parent = path.parent
    if not parent.exists():
        raise InputError(f"output folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise InputError(f"output folder {parent} is not writable")
