"""The specialization cache: what an engine prepares at load, kept on disk between processes.

Layout under the cache root (``$DEVICEFIT_CACHE_DIR`` or ``~/.cache/devicefit``)::

    entries/<key>/manifest.json   engine, options, files with sizes and crc32, created / last used
    entries/<key>/<files>         the engine's artifacts (.onnx, .npy, .mlmodelc ...)
    hashes/<path-digest>.json     model path + stat signature -> content sha256 (skip rehashing)
    locks/<key>.lock              fcntl locks: one builder per key across processes
    locks/<key>.use               shared while a process reads the entry; eviction needs it exclusive
    tmp/                          entries being built; renamed into entries/ only when complete

An entry is built in ``tmp/`` and renamed into place in one ``os.rename``: a process killed mid-write
leaves only a stray temporary (swept later), never a half entry. Reads verify every file's size and checksum
(cheap next to loading) and drop a corrupted entry so it is rebuilt. Nothing here is ever unpickled.

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
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
DEFAULT_MAX_BYTES = 4 * 1024**3
_STALE_TMP_S = 3600.0
_SMALL_FILE = 1 << 16


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


def _checksum(path: Path) -> str:
    """crc32 for small files; for large ones a wrapping uint64 word sum (+ crc32 of the tail bytes).

    The word sum runs at memory bandwidth (~3 ms for 80 MB against ~30 ms for crc32), which is what keeps a
    cached load several times faster than preparing the model. It catches truncation, zeroed pages and
    bit flips (what crashes and disks do); it is not a defence against deliberate tampering, which needs
    no defence here because nothing in the cache is ever executed or unpickled.
    """
    size = path.stat().st_size
    if size <= _SMALL_FILE * 16:
        return f"crc32:{zlib.crc32(path.read_bytes()):08x}"
    import mmap

    import numpy as np

    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        words = np.frombuffer(m, dtype=np.uint64, count=size // 8)
        total = int(np.add.reduce(words, dtype=np.uint64))
        del words  # release the buffer before the mmap closes
        tail = zlib.crc32(m[size - size % 8 :])
    return f"sum64:{total:016x}:{tail:08x}"


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


def _stat_signature(path: Path) -> list[Any]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    sig: list[Any] = []
    for p in files:
        st = p.stat()
        if st.st_size <= _SMALL_FILE:
            # small files by content: coremltools rewrites an unchanged Manifest.json on every load
            sig.append([str(p), st.st_size, hashlib.sha256(p.read_bytes()).hexdigest()])
        else:
            sig.append([str(p), st.st_size, st.st_mtime_ns, st.st_ino])
    return sig


class SpecializationCache:
    """A size-capped, LRU-evicted, multi-process-safe store of prepared models.

    Args:
        root: cache folder (default :func:`default_cache_dir`).
        max_bytes: size cap; least recently used entries are evicted past it.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, max_bytes: int | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        env_cap = os.environ.get("DEVICEFIT_CACHE_MAX_BYTES")
        self.max_bytes = max_bytes if max_bytes is not None else int(env_cap or DEFAULT_MAX_BYTES)
        self.events: list[str] = []  # "hit <key>", "miss <key>", "corrupt <key>: why", "evict <key>"

    # ------------------------------------------------------------------ paths and locks
    def _dir(self, name: str) -> Path:
        d = self.root / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """An exclusive fcntl lock shared by every process using this cache root."""
        with _flock(self._dir("locks") / f"{name}.lock", fcntl.LOCK_EX):
            yield

    @contextlib.contextmanager
    def reading(self, entry: CacheEntry | str) -> Iterator[None]:
        """Hold ``entry`` (or a key) against eviction while reading it, e.g. while an engine loads from it.

        A shared lock: any number of readers, in any processes, at once. Take it *before* looking the entry
        up (``with cache.reading(key): entry, hit = cache.get_or_build(key, ...)``) so that it cannot be
        evicted between the lookup and the load.
        """
        key = entry.key if isinstance(entry, CacheEntry) else entry
        with _flock(self._dir("locks") / f"{key}.use", fcntl.LOCK_SH):
            yield

    # ------------------------------------------------------------------ keys
    def content_hash(self, path: str | os.PathLike[str]) -> str:
        """sha256 of a model file or folder; rehashed only when its size / mtime / inode change."""
        p = Path(path).resolve()
        sig = _stat_signature(p)
        record = self._dir("hashes") / (hashlib.sha256(str(p).encode()).hexdigest()[:32] + ".json")
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(record.read_text())
            if data.get("signature") == sig:
                return str(data["sha256"])
        digest = hash_path(p)
        if _stat_signature(p) == sig:  # the file did not change while hashing
            _atomic_text(record, json.dumps({"path": str(p), "signature": sig, "sha256": digest}))
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
        path = self.root / "entries" / key
        if not path.exists():
            return None
        with self.reading(key):  # an eviction mid-verify would read as corruption
            if not path.exists():  # evicted while we waited for the lock
                return None
            try:
                entry = self._verify(key, path)
            except (OSError, ValueError, KeyError, TypeError) as e:
                self.events.append(f"corrupt {key}: {e}")
                self._remove(path)
                return None
            now = time.time()
            with contextlib.suppress(OSError):
                os.utime(path / "manifest.json", (now, now))  # mtime of the manifest = last use (LRU)
        entry.last_used = now
        return entry

    def _verify(self, key: str, path: Path) -> CacheEntry:
        manifest = json.loads((path / "manifest.json").read_text())
        if manifest.get("format") != FORMAT_VERSION or manifest.get("key") != key:
            raise ValueError("manifest format or key mismatch")
        total = 0
        for rel, info in manifest["files"].items():
            f = path / rel
            if f.stat().st_size != info["size"]:
                raise ValueError(f"{rel} has {f.stat().st_size} bytes, manifest says {info['size']}")
            if _checksum(f) != info["checksum"]:
                raise ValueError(f"{rel} fails its checksum")
            total += info["size"]
        return CacheEntry(
            key=key,
            path=path,
            engine=manifest["engine"],
            options=manifest["options"],
            size_bytes=total,
            created=manifest["created"],
            last_used=(path / "manifest.json").stat().st_mtime,
            meta=manifest.get("meta", {}),
        )

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
            meta = build(tmp) or {}
            files = {}
            for f in sorted(p for p in tmp.rglob("*") if p.is_file()):
                files[str(f.relative_to(tmp))] = {"size": f.stat().st_size, "checksum": _checksum(f)}
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
        """All verified entries, most recently used first (corrupted ones are dropped)."""
        out = []
        base = self.root / "entries"
        if not base.exists():
            return []
        for d in base.iterdir():
            if d.is_dir() and not d.name.startswith("."):
                try:
                    out.append(self._describe(d))
                except (OSError, ValueError, KeyError):
                    continue
        return sorted(out, key=lambda e: e.last_used, reverse=True)

    def _describe(self, d: Path) -> CacheEntry:
        """Like _verify without the crc pass (listing must stay fast)."""
        manifest = json.loads((d / "manifest.json").read_text())
        return CacheEntry(
            key=d.name,
            path=d,
            engine=manifest["engine"],
            options=manifest["options"],
            size_bytes=sum(int(i["size"]) for i in manifest["files"].values()),
            created=manifest["created"],
            last_used=(d / "manifest.json").stat().st_mtime,
            meta=manifest.get("meta", {}),
        )

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
                with _flock(self._dir("locks") / f"{e.key}.use", fcntl.LOCK_EX, blocking=False) as got:
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
        with self.lock("_evict"):
            for e in self.entries():
                with _flock(self._dir("locks") / f"{e.key}.use", fcntl.LOCK_EX, blocking=False) as got:
                    if not got:
                        self.events.append(f"clear skipped {e.key} (in use)")
                        continue
                    self._remove(e.path)
                removed += 1
            shutil.rmtree(self.root / "hashes", ignore_errors=True)
            self._sweep_stale_tmp()
        return removed

    def _sweep_stale_tmp(self) -> None:
        tmp = self.root / "tmp"
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
            shutil.rmtree(trash, ignore_errors=True)


@contextlib.contextmanager
def _flock(path: Path, mode: int, blocking: bool = True) -> Iterator[bool]:
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


def _atomic_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
