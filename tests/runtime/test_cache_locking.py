"""Specialization cache locking: no lock-order deadlock between a builder and an evictor in two processes,
and an entry being read is never evicted from under its reader (instrumented with events, not sleeps)."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np

from devicefit.engines import create
from devicefit.engines.cache import SpecializationCache


class _PausingLister(SpecializationCache):
    """Evictor: once it holds ``_evict`` and starts listing, waits until the builder has written its entry."""

    def __init__(self, root: str, listing, resume) -> None:
        super().__init__(root)
        self.listing, self.resume = listing, resume

    def entries(self):
        self.listing.set()
        self.resume.wait(20)
        return super().entries()


class _SignallingEvict(SpecializationCache):
    """Builder: signals when its new entry is in place and it is about to evict."""

    def __init__(self, root: str, built) -> None:
        super().__init__(root)
        self.built = built

    def evict(self, max_bytes: int | None = None) -> list[str]:
        self.built.set()
        return super().evict(max_bytes)


def _evictor(root: str, listing, resume) -> None:
    _PausingLister(root, listing, resume).evict(0)


def _builder(root: str, listing, built) -> None:
    assert listing.wait(20)
    entry, hit = _SignallingEvict(root, built).get_or_build(
        "fresh", "test", {}, lambda d: (d / "blob").write_bytes(b"x" * 100)
    )
    assert not hit and (entry.path / "blob").read_bytes() == b"x" * 100


def test_builder_and_evictor_in_two_processes_do_not_deadlock(tmp_path):
    # Before the fix: the builder held lock("fresh") and waited on "_evict" inside put(); the evictor held
    # "_evict" and waited on lock("fresh") for the entry it had just listed. Both hung.
    ctx = mp.get_context("spawn")
    root = str(tmp_path / "c")
    listing, built = ctx.Event(), ctx.Event()
    procs = [
        ctx.Process(target=_evictor, args=(root, listing, built)),
        ctx.Process(target=_builder, args=(root, listing, built)),
    ]
    for p in procs:
        p.start()
    deadline = time.monotonic() + 30
    try:
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
        hung = [p.name for p in procs if p.is_alive()]
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5)
    assert not hung, f"deadlocked: {hung}"
    assert [p.exitcode for p in procs] == [0, 0]
    # the evictor (cap 0) skipped the entry its builder was still holding
    assert [e.key for e in SpecializationCache(root).entries()] == ["fresh"]


def _blob(size: int):
    return lambda d: (d / "blob").write_bytes(os.urandom(size))


def test_reader_holds_entry_against_eviction(tmp_path):
    root = tmp_path / "c"
    reader = SpecializationCache(root)
    old, _ = reader.get_or_build("old", "test", {}, _blob(1000))
    held, _ = reader.get_or_build("held", "test", {}, _blob(1000))
    evictor = SpecializationCache(root)  # another user of the root (a process, in real life)
    with reader.reading(held):
        assert evictor.evict(1) == ["old"]  # not an LRU stop: the held entry is skipped, not waited on
        assert (held.path / "blob").exists() and reader.get("held") is not None
        assert not old.path.exists()
    assert evictor.evict(1) == ["held"]  # released: now it goes
    assert evictor.entries() == []


def test_clear_skips_entries_in_use_and_builds_in_progress(tmp_path):
    root = tmp_path / "c"
    reader = SpecializationCache(root)
    free, _ = reader.get_or_build("free", "test", {}, _blob(100))
    held, _ = reader.get_or_build("held", "test", {}, _blob(100))
    building = root / "tmp" / "build-in-progress"  # a fresh temporary of another process's build
    building.mkdir(parents=True)
    other = SpecializationCache(root)
    with reader.reading(held):
        assert other.clear() == 1
        assert not free.path.exists() and (held.path / "blob").exists()
        assert building.exists()
        assert any("clear skipped held" in e for e in other.events)
    assert other.clear() == 1 and other.entries() == []


def test_interp_load_holds_its_entry(small_pkg, small_feeds, tmp_path, monkeypatch):
    from devicefit.engines import _plan_io

    root = tmp_path / "c"
    with create("interp", small_pkg, cache=SpecializationCache(root)) as e:
        ref = next(iter(e.predict(small_feeds).values()))
    real_load_plan = _plan_io.load_plan
    evicted: list[list[str]] = []

    def evict_then_load(folder: Path):
        evicted.append(SpecializationCache(root).evict(0))  # another process evicting mid-load
        return real_load_plan(folder)

    monkeypatch.setattr(_plan_io, "load_plan", evict_then_load)
    cache = SpecializationCache(root)
    with create("interp", small_pkg, cache=cache) as e:
        assert e.timings.cache_hit is True
        np.testing.assert_array_equal(next(iter(e.predict(small_feeds).values())), ref)
    assert evicted == [[]] and not any(ev.startswith("corrupt") for ev in cache.events)
    assert SpecializationCache(root).evict(0) != []  # released after the load


def test_onnxruntime_load_holds_its_entries(small_onnx, small_feeds, tmp_path, monkeypatch):
    import onnxruntime as ort

    root = tmp_path / "c"
    with create("onnxruntime", small_onnx, cache=SpecializationCache(root), cache_optimized_graph=True) as e:
        ref = next(iter(e.predict(small_feeds).values()))
    real_session = ort.InferenceSession
    evicted: list[list[str]] = []

    def evict_then_open(path, *args, **kwargs):
        evicted.append(SpecializationCache(root).evict(0))  # another process evicting mid-load
        return real_session(path, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", evict_then_open)
    cache = SpecializationCache(root)
    with create("onnxruntime", small_onnx, cache=cache, cache_optimized_graph=True) as e:
        assert e.timings.cache_hit is True
        np.testing.assert_allclose(next(iter(e.predict(small_feeds).values())), ref, rtol=1e-6)
    assert evicted == [[]] and not any(ev.startswith("corrupt") for ev in cache.events)
