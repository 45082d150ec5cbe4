"""The specialization cache: what an engine prepares at load, kept on disk between processes.

Layout under the cache root (``$DEVICEFIT_CACHE_DIR`` or ``~/.cache/devicefit``)::

    entries/<key>/manifest.json   engine, options, files with sizes and sha256, created / last used
    entries/<key>/<files>         the engine's artifacts (.onnx, .npy, .mlmodelc ...)
    hashes/<path-digest>.json     model path + stat signature -> content sha256 (skip rehashing)
    locks/<key>.lock              fcntl locks: one builder per key across processes
    locks/<key>.use               shared while a process reads the entry; eviction needs it exclusive
    tmp/                          entries being built; renamed into entries/ only when complete

An entry is built in ``tmp/`` and renamed into place in one ``os.rename``: a process killed mid-write
leaves only a stray temporary (swept later), never a half entry. Reads verify every file's size and sha256
and drop a corrupted entry so it is rebuilt; any damaged cache file (a manifest of the wrong JSON shape, a
file where a folder belongs) is treated the same way: removed and rebuilt, never an exception. Nothing here is
ever unpickled. File-level helpers live in :mod:`devicefit.engines._cache_files`.

Lock order, so that no two processes can wait on each other: the only blocking acquisitions are an entry's
``.use`` lock (shared), then its build lock, then ``_evict``; eviction, while holding ``_evict``, only *tries*
an entry's ``.use`` lock (``LOCK_NB``) and skips the entry when a reader or its builder holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devicefit.engines._cache_files import (
    atomic_text,
    checksum,
    flock,
    hash_path,
    parse_max_bytes,
    read_manifest,
    stat_signature,
)
from devicefit.errors import InputError

# 2: files carry sha256 digests (1 had crc32 / a word sum); older entries fail verification and are rebuilt.
FORMAT_VERSION = 2
DEFAULT_MAX_BYTES = 4 * 1024**3
_STALE_TMP_S = 3600.0
_EVENTS_KEPT = 1000
# What a damaged entry raises while it is read: each means "rebuild it", none is an internal error.
_DAMAGE = (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError)
__all__ = [
    "DEFAULT_MAX_BYTES",
    "FORMAT_VERSION",
    "CacheEntry",
    "SpecializationCache",
    "default_cache_dir",
    "hash_path",
]


def default_cache_dir() -> Path:
    """``$DEVICEFIT_CACHE_DIR`` or ``~/.cache/devicefit``."""
    env = os.environ.get("DEVICEFIT_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "devicefit"


@dataclass
class CacheEntry:
    """A verified cache entry."""

    key: str
    path: Path
    engine: str
    options: dict[str, Any]
    size_bytes: int
    created: float
    last_used: float
    meta: dict[str, Any]


# What the cache writes at its root, and the keys it makes (:meth:`SpecializationCache.key`).
_ROOT_PARTS = frozenset({"entries", "hashes", "locks", "tmp"})
_KEY = re.compile(r"[0-9a-f]{40}")


class SpecializationCache:
    """A size-capped, LRU-evicted, multi-process-safe store of prepared models.

    Args:
        root: cache folder (default :func:`default_cache_dir`).
        max_bytes: size cap; least recently used entries are evicted past it.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, max_bytes: int | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        env_cap = os.environ.get("DEVICEFIT_CACHE_MAX_BYTES")
        self.max_bytes = (
            max_bytes if max_bytes is not None else parse_max_bytes(env_cap) if env_cap else DEFAULT_MAX_BYTES
        )
        # "hit <key>", "miss <key>", "corrupt <key>: why", "evict <key>": the latest ones (a long-lived
        # server must not grow a list forever)
        self.events: deque[str] = deque(maxlen=_EVENTS_KEPT)

    # ------------------------------------------------------------------ paths and locks
    def _dir(self, name: str) -> Path:
        """``root/name`` as a folder; a file in its place (damage) is removed first."""
        d = self.root / name
        if d.exists() and not d.is_dir():
            with contextlib.suppress(FileNotFoundError):
                d.unlink()
            self.events.append(f"repaired {name}: a file stood where the folder belongs")
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # the root itself is a file, unwritable, on a full disk...
            raise InputError(
                f"cannot use the cache folder {self.root}: {type(e).__name__}: {e.strerror or e}; set "
                "DEVICEFIT_CACHE_DIR to a writable folder"
            ) from e
        return d

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """An exclusive fcntl lock shared by every process using this cache root."""
        with flock(self._dir("locks") / f"{name}.lock", fcntl.LOCK_EX):
            yield

    @contextlib.contextmanager
    def reading(self, entry: CacheEntry | str) -> Iterator[None]:
        """Hold ``entry`` (or a key) against eviction while reading it, e.g. while an engine loads from it.

        A shared lock: any number of readers, in any processes, at once. Take it *before* looking the entry
        up (``with cache.reading(key): entry, hit = cache.get_or_build(key, ...)``) so that it cannot be
        evicted between the lookup and the load.
        """
        key = entry.key if isinstance(entry, CacheEntry) else entry
        with flock(self._dir("locks") / f"{key}.use", fcntl.LOCK_SH):
            yield

    # ------------------------------------------------------------------ keys
    def content_hash(self, path: str | os.PathLike[str]) -> str:
        """sha256 of a model file or folder; rehashed only when its size / mtime / inode change."""
        p = Path(path).resolve()
        sig = stat_signature(p)
        record = self._dir("hashes") / (hashlib.sha256(str(p).encode()).hexdigest()[:32] + ".json")
        with contextlib.suppress(*_DAMAGE):
            data = json.loads(record.read_text())
            if data.get("signature") == sig and isinstance(data.get("sha256"), str):
                return str(data["sha256"])
        digest = hash_path(p)
        if stat_signature(p) == sig:  # the file did not change while hashing
            atomic_text(record, json.dumps({"path": str(p), "signature": sig, "sha256": digest}))
        return digest

    @staticmethod
    def key(content_hash: str, engine: str, options: dict[str, Any], engine_version: str) -> str:
        """Cache key of (model content, engine, options, engine version, cache format)."""
        blob = json.dumps(
            [FORMAT_VERSION, content_hash, engine, options, engine_version], sort_keys=True, default=str
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:40]

    # ------------------------------------------------------------------ get / put
    def get(self, key: str) -> CacheEntry | None:
        """The verified entry for ``key``, or None (a corrupted entry is removed and reported)."""
        path = self._dir("entries") / key
        if not path.exists():
            return None
        with self.reading(key):  # an eviction mid-verify would read as corruption
            if not path.exists():  # evicted while we waited for the lock
                return None
            try:
                entry = self._verify(key, path)
            except _DAMAGE as e:
                self.events.append(f"corrupt {key}: {type(e).__name__}: {e}")
                self._remove(path)
                return None
            now = time.time()
            with contextlib.suppress(OSError):
                os.utime(path / "manifest.json", (now, now))  # mtime of the manifest = last use (LRU)
        entry.last_used = now
        return entry

    def _verify(self, key: str, path: Path) -> CacheEntry:
        manifest = read_manifest(path, key, FORMAT_VERSION)
        total = 0
        for rel, info in manifest["files"].items():
            f = path / rel
            if f.stat().st_size != info["size"]:
                raise ValueError(f"{rel} has {f.stat().st_size} bytes, manifest says {info['size']}")
            if checksum(f) != info["checksum"]:
                raise ValueError(f"{rel} fails its checksum")
            total += info["size"]
        return self._entry(path, manifest, total)

    @staticmethod
    def _entry(path: Path, manifest: dict[str, Any], total: int) -> CacheEntry:
        return CacheEntry(
            key=path.name,
            path=path,
            engine=manifest["engine"],
            options=manifest["options"],
            size_bytes=total,
            created=float(manifest["created"]),
            last_used=(path / "manifest.json").stat().st_mtime,
            meta=manifest.get("meta", {}),
        )

    def discard(self, entry: CacheEntry | str, reason: str) -> None:
        """Remove an entry an engine found unusable (e.g. its runtime refused the file), so it is rebuilt.

        Args:
            entry: the entry or its key.
            reason: why, recorded in :attr:`events` as ``"corrupt <key>: <reason>"``.
        """
        key = entry.key if isinstance(entry, CacheEntry) else entry
        self.events.append(f"corrupt {key}: {reason}")
        self._remove(self._dir("entries") / key)

    def put(
        self,
        key: str,
        engine: str,
        options: dict[str, Any],
        build: Callable[[Path], dict[str, Any] | None],
    ) -> CacheEntry:
        """Build an entry with ``build(folder)`` (it writes its files there and may return metadata)."""
        with self.reading(key):  # evicting others must not take the entry just written
            self._write(key, engine, options, build)
            self.evict()
            entry = self.get(key)
        if entry is None:
            raise OSError(f"cache entry {key} vanished right after it was written")
        return entry

    def _write(
        self,
        key: str,
        engine: str,
        options: dict[str, Any],
        build: Callable[[Path], dict[str, Any] | None],
    ) -> None:
        tmp = Path(tempfile.mkdtemp(prefix=f"{key[:12]}.", dir=self._dir("tmp")))
        try:
            meta = build(tmp)
            meta = meta if isinstance(meta, dict) else {}  # builders may return whatever their last call did
            files = {}
            for f in sorted(p for p in tmp.rglob("*") if p.is_file()):
                files[str(f.relative_to(tmp))] = {"size": f.stat().st_size, "checksum": checksum(f)}
            manifest = {
                "format": FORMAT_VERSION,
                "key": key,
                "engine": engine,
                "options": options,
                "files": files,
                "created": time.time(),
                "meta": meta,
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str))
            final = self._dir("entries") / key
            if final.exists():  # a corrupt or concurrent one: replace it atomically
                self._remove(final)
            os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def get_or_build(
        self,
        key: str,
        engine: str,
        options: dict[str, Any],
        build: Callable[[Path], dict[str, Any] | None],
    ) -> tuple[CacheEntry, bool]:
        """(entry, hit). One process builds a key at a time; the others wait and then reuse it.

        Eviction may remove the entry once this returns; load from it inside :meth:`reading`.
        """
        with self.reading(key):
            entry = self.get(key)
            if entry is not None:
                self.events.append(f"hit {key}")
                return entry, True
            with self.lock(key):
                entry = self.get(key)  # built by another process while we waited
                if entry is not None:
                    self.events.append(f"hit {key}")
                    return entry, True
                self.events.append(f"miss {key}")
                self._write(key, engine, options, build)
            # NOTE: evict only after releasing the build lock: a process evicting while we held it and
            # waited on `_evict` was a lock-order inversion (both hung)
            self.evict()
            entry = self.get(key)
        if entry is None:
            raise OSError(f"cache entry {key} vanished right after it was written")
        return entry, False

    # ------------------------------------------------------------------ listing, eviction
    def entries(self) -> list[CacheEntry]:
        """All readable entries, most recently used first (damaged ones are skipped; ``get`` rebuilds them)."""
        out = []
        base = self._dir("entries")
        for d in base.iterdir():
            if d.is_dir() and not d.name.startswith("."):
                try:
                    out.append(self._describe(d))
                except _DAMAGE:
                    continue
        return sorted(out, key=lambda e: e.last_used, reverse=True)

    def _describe(self, d: Path) -> CacheEntry:
        """Like _verify without the checksum pass (listing must stay fast)."""
        manifest = read_manifest(d, d.name, FORMAT_VERSION)
        return self._entry(d, manifest, sum(int(i["size"]) for i in manifest["files"].values()))

    def size_bytes(self) -> int:
        return sum(e.size_bytes for e in self.entries())

    def evict(self, max_bytes: int | None = None) -> list[str]:
        """Remove least recently used entries until the cache fits ``max_bytes``; sweep stale temporaries.

        Entries being read or just built (held with :meth:`reading`, in any process) are skipped, so the
        cache can stay above the cap until they are released.
        """
        cap = self.max_bytes if max_bytes is None else max_bytes
        removed = []
        with self.lock("_evict"):
            entries = self.entries()
            total = sum(e.size_bytes for e in entries)
            for e in reversed(entries):  # oldest use first
                if total <= cap:
                    break
                # never pull an entry out from under a reader; never wait for one either (see lock order)
                with flock(self._dir("locks") / f"{e.key}.use", fcntl.LOCK_EX, blocking=False) as got:
                    if not got:
                        continue
                    self._remove(e.path)
                total -= e.size_bytes
                removed.append(e.key)
                self.events.append(f"evict {e.key}")
            self._sweep_stale_tmp()
        return removed

    def clear(self) -> int:
        """Remove every entry not in use; returns how many were removed.

        Entries another process is reading or building (see :meth:`reading`) stay, and so do temporaries of
        builds in progress: only stale ones are swept, as in :meth:`evict`.
        """
        removed = 0
        self._refuse_foreign_root()
        with self.lock("_evict"):
            self._remove_unreadable()
            for e in self.entries():
                with flock(self._dir("locks") / f"{e.key}.use", fcntl.LOCK_EX, blocking=False) as got:
                    if not got:
                        self.events.append(f"clear skipped {e.key} (in use)")
                        continue
                    self._remove(e.path)
                removed += 1
            for record in (self.root / "hashes").glob("*.json"):  # only the records it writes
                with contextlib.suppress(OSError):
                    record.unlink()
            self._sweep_stale_tmp()
        return removed

    def _refuse_foreign_root(self) -> None:
        """Refuse to clear a root holding files the cache did not write (``$DEVICEFIT_CACHE_DIR`` set to a
        folder in use): clearing would delete them.

        Raises:
            InputError: naming the first foreign file and what to do.
        """
        try:
            foreign = sorted(p.name for p in self.root.iterdir() if p.name not in _ROOT_PARTS)
            hashes = self.root / "hashes"
            if hashes.is_dir():
                foreign += sorted(f"hashes/{p.name}" for p in hashes.iterdir() if p.suffix != ".json")
        except FileNotFoundError:
            return
        except OSError as e:
            raise InputError(f"cache folder {self.root} cannot be read: {e.strerror or e}") from None
        if foreign:
            raise InputError(
                f"cache folder {self.root} holds {foreign[0]!r}, which devicefit did not write; clearing "
                "clears only a folder used for devicefit's cache alone: point $DEVICEFIT_CACHE_DIR at a folder "
                "of its own"
            )

    def _remove_unreadable(self) -> None:
        """Remove entries whose manifest cannot be read (not in use), and stray files in ``entries/``.

        Only what is recognisably the cache's: a folder or file named like a key it makes, or a folder
        holding a ``manifest.json``; anything else under ``entries/`` is left alone.
        """
        for d in self._dir("entries").iterdir():
            if d.name.startswith("."):
                continue
            if d.is_dir():
                try:
                    read_manifest(d, d.name, FORMAT_VERSION)
                    continue
                except _DAMAGE:
                    pass
            if not _KEY.fullmatch(d.name) and not (d.is_dir() and (d / "manifest.json").exists()):
                continue
            with flock(self._dir("locks") / f"{d.name}.use", fcntl.LOCK_EX, blocking=False) as got:
                if got:
                    self._remove(d)

    def _sweep_stale_tmp(self) -> None:
        tmp = self._dir("tmp")
        if tmp.exists():
            for t in tmp.iterdir():
                with contextlib.suppress(OSError):
                    if time.time() - t.stat().st_mtime > _STALE_TMP_S:
                        shutil.rmtree(t, ignore_errors=True)

    def _remove(self, path: Path) -> None:
        # rename first so readers never see a half-deleted entry
        trash = path.with_name(f".{path.name}.del-{os.getpid()}-{time.monotonic_ns()}")
        with contextlib.suppress(OSError):
            os.rename(path, trash)
            if trash.is_dir():
                shutil.rmtree(trash, ignore_errors=True)
            else:  # a file where an entry folder belongs
                trash.unlink()
