"""Specialization cache: hit / miss, invalidation, LRU eviction, crash safety, several processes."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np

from devicefit.engines import create
from devicefit.engines.cache import SpecializationCache


def _out(engine, feeds):
    return next(iter(engine.predict(feeds).values()))


def test_interp_hit_miss_and_same_outputs(small_pkg, small_feeds, cache):
    with create("interp", small_pkg, cache=False) as e:
        ref = _out(e, small_feeds)
    with create("interp", small_pkg, cache=cache) as e:
        assert e.timings.cache_hit is False
        np.testing.assert_array_equal(_out(e, small_feeds), ref)
    with create("interp", small_pkg, cache=cache) as e:
        assert e.timings.cache_hit is True
        np.testing.assert_array_equal(_out(e, small_feeds), ref)
    (entry,) = cache.entries()
    names = {p.name for p in entry.path.iterdir()}
    assert names == {"manifest.json", "plan.json", "weights.bin"}  # no pickles anywhere


def test_invalidation_when_model_changes(small_pkg, small_feeds, cache, tmp_path):
    import torch

    from tests.helpers import convert

    pkg = tmp_path / "m.mlpackage"
    shutil.copytree(small_pkg, pkg)
    with create("interp", pkg, cache=cache) as e:
        before = _out(e, small_feeds)
    other = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(256, 5)
    ).eval()
    shutil.rmtree(pkg)
    convert(other, torch.from_numpy(small_feeds["x"])).save(str(pkg))
    with create("interp", pkg, cache=cache) as e:
        assert e.timings.cache_hit is False  # new content, new key
        after = _out(e, small_feeds)
    expected = other(torch.from_numpy(small_feeds["x"])).detach().numpy()
    np.testing.assert_allclose(after, expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(after, before)


def test_lru_eviction(cache, tmp_path):
    def build(size):
        return lambda d: (d / "blob").write_bytes(os.urandom(size))

    cache.max_bytes = 2500
    for i in range(3):
        cache.get_or_build(f"k{i}", "test", {}, build(1000))
        time.sleep(0.02)
    keys = {e.key for e in cache.entries()}
    assert keys == {"k1", "k2"}  # the least recently used went first
    cache.get("k1")  # use k1 so k2 becomes the oldest
    time.sleep(0.02)
    cache.get_or_build("k3", "test", {}, build(1000))
    assert {e.key for e in cache.entries()} == {"k1", "k3"}
    assert any(ev.startswith("evict k2") for ev in cache.events)
    assert cache.clear() == 2 and cache.entries() == []


def test_corrupt_entry_is_detected_and_rebuilt(small_pkg, small_feeds, cache):
    with create("interp", small_pkg, cache=cache) as e:
        ref = _out(e, small_feeds)
    (entry,) = cache.entries()
    weights = entry.path / "weights.bin"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    weights.write_bytes(bytes(data))
    with create("interp", small_pkg, cache=cache) as e:
        assert e.timings.cache_hit is False
        np.testing.assert_array_equal(_out(e, small_feeds), ref)
    assert any(ev.startswith("corrupt") for ev in cache.events)
    (plan,) = [p for p in cache.entries()[0].path.iterdir() if p.name == "plan.json"]
    plan.write_text("{not json")
    with create("interp", small_pkg, cache=cache) as e:  # truncated JSON: rebuilt as well
        np.testing.assert_array_equal(_out(e, small_feeds), ref)
    with create("interp", small_pkg, cache=cache) as e:
        assert e.timings.cache_hit is True


def _slow_writer(root: str, ready) -> None:
    cache = SpecializationCache(root)

    def build(d: Path) -> None:
        (d / "part1").write_bytes(b"x" * 1000)
        ready.set()
        time.sleep(30)  # killed here, mid-write

    cache.get_or_build("victim", "test", {}, build)


def test_process_killed_mid_write_leaves_no_entry(tmp_path):
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    p = ctx.Process(target=_slow_writer, args=(str(tmp_path / "c"), ready))
    p.start()
    assert ready.wait(20)
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    cache = SpecializationCache(tmp_path / "c")
    assert cache.get("victim") is None and cache.entries() == []
    entry, hit = cache.get_or_build("victim", "test", {}, lambda d: (d / "ok").write_bytes(b"1"))
    assert not hit and (entry.path / "ok").read_bytes() == b"1"  # the lock died with the process


def _build_once(root: str, counter: str, barrier) -> None:
    cache = SpecializationCache(root)

    def build(d: Path) -> None:
        with open(counter, "a") as f:
            f.write("built\n")
        time.sleep(0.3)
        (d / "artifact").write_bytes(b"A" * 100)

    barrier.wait()
    entry, _ = cache.get_or_build("shared", "test", {}, build)
    assert (entry.path / "artifact").read_bytes() == b"A" * 100


def test_two_processes_build_once(tmp_path):
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(2)
    counter = tmp_path / "count.txt"
    procs = [
        ctx.Process(target=_build_once, args=(str(tmp_path / "c"), str(counter), barrier)) for _ in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    assert counter.read_text().count("built") == 1  # the second process waited and reused the entry
    assert len(SpecializationCache(tmp_path / "c").entries()) == 1


def test_onnxruntime_optimized_graph_cached(small_onnx, small_feeds, cache):
    with create("onnxruntime", small_onnx, cache=cache, cache_optimized_graph=True) as a:
        ref = _out(a, small_feeds)
    with create("onnxruntime", small_onnx, cache=cache, cache_optimized_graph=True) as b:
        assert b.timings.cache_hit is True
        np.testing.assert_allclose(_out(b, small_feeds), ref, rtol=1e-6)
    assert {e.engine for e in cache.entries()} == {"onnxruntime"}
    assert (cache.entries()[0].path / "model.opt.onnx").exists()


def test_default_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("DEVICEFIT_CACHE_DIR", str(tmp_path / "env-cache"))
    assert SpecializationCache().root == tmp_path / "env-cache"
