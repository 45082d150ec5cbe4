"""File-level helpers of the specialization cache: checksums, content hashes, manifests, locks, atomic writes.

Kept apart from :mod:`devicefit.engines.cache` (the cache's policy: keys, get / build / evict) so that each stays
one concept. Nothing here is ever unpickled or executed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devicefit.errors import InputError

# Small files are hashed by content in stat signatures: coremltools rewrites an unchanged Manifest.json on load.
SMALL_FILE = 1 << 16
# The digest cache files are verified with. sha256 rather than blake2b: with the SHA extensions of current x86
# and Apple CPUs it ran at ~590 MB/s against ~300 MB/s for blake2b here (40 MB, interleaved, median of 5).
CHECKSUM_ALGORITHM = "sha256"
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def checksum(path: Path) -> str:
    """``sha256:<hex>`` of a file, streamed.

    A real digest, not a sum: swapped words, flipped bits, zeroed pages and truncation all change it. (The
    former wrapping sum of 64-bit words let swapped words pass and served corrupted weights.)
    """
    with path.open("rb") as f:
        digest = hashlib.file_digest(f, CHECKSUM_ALGORITHM)
    return f"{CHECKSUM_ALGORITHM}:{digest.hexdigest()}"


def hash_path(path: Path) -> str:
    """sha256 over a file, or over a folder's relative names and file bytes (sorted, so stable)."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for p in files:
        h.update(str(p.relative_to(path) if p != path else p.name).encode())
        with p.open("rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()


def stat_signature(path: Path) -> list[Any]:
    """What must stay the same for a recorded content hash to still hold (sizes, mtimes, small files' bytes)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    sig: list[Any] = []
    for p in files:
        st = p.stat()
        if st.st_size <= SMALL_FILE:
            sig.append([str(p), st.st_size, hashlib.sha256(p.read_bytes()).hexdigest()])
        else:
            sig.append([str(p), st.st_size, st.st_mtime_ns, st.st_ino])
    return sig


def parse_max_bytes(text: str) -> int:
    """``DEVICEFIT_CACHE_MAX_BYTES``: a byte count, optionally with K/M/G/T (binary: 4G = 4 GiB).

    Raises:
        InputError: anything else (one line naming the variable and the value).
    """
    match = _SIZE_RE.match(text)
    if match is None:
        raise InputError(
            f"DEVICEFIT_CACHE_MAX_BYTES must be a size in bytes like 4000000000 or 4G, got {text!r}; "
            "fix or unset it"
        )
    unit = (match.group(2) or "").upper()
    return int(match.group(1)) * _UNITS[unit[:1]]


def read_manifest(path: Path, key: str, format_version: int) -> dict[str, Any]:
    """The manifest of the entry at ``path``, checked against the shape the cache writes.

    Raises:
        ValueError: the manifest is missing fields, of another JSON shape (``null``, ``[]``, ``files: null``),
            of another format version or for another key. OSError: it cannot be read.
    """
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except RecursionError as e:
        raise ValueError("manifest.json is nested too deeply") from e
    if not isinstance(manifest, dict):
        raise ValueError(f"manifest.json holds {type(manifest).__name__}, not an object")
    if manifest.get("format") != format_version or manifest.get("key") != key:
        raise ValueError("manifest format or key mismatch")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(rel, str)
        and isinstance(info, dict)
        and isinstance(info.get("size"), int)
        and isinstance(info.get("checksum"), str)
        for rel, info in files.items()
    ):
        raise ValueError("manifest.json 'files' is not a map of name -> {size, checksum}")
    if not isinstance(manifest.get("engine"), str) or not isinstance(manifest.get("options"), dict):
        raise ValueError("manifest.json lacks its engine or options")
    if not isinstance(manifest.get("created"), int | float):
        raise ValueError("manifest.json lacks its creation time")
    if not isinstance(manifest.get("meta", {}), dict):
        raise ValueError("manifest.json 'meta' is not an object")
    for rel in files:
        if rel.startswith("/") or ".." in Path(rel).parts:
            raise ValueError(f"manifest.json names a file outside the entry: {rel!r}")
    return manifest


@contextlib.contextmanager
def flock(path: Path, mode: int, blocking: bool = True) -> Iterator[bool]:
    """flock ``path`` (``LOCK_SH`` / ``LOCK_EX``); yields False when ``blocking=False`` and it is held.

    Each call opens its own file description, so locks conflict between threads of one process too.
    """
    with open(path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), mode if blocking else mode | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def atomic_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary and a rename (readers never see half a file)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
