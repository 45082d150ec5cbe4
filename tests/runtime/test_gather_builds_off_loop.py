"""Gathered requests never build a batched graph on the event loop's thread.

A leader of gathered requests runs their batch on the awaiting thread. On the interpreter a batch size's graph is
built on its second use (traced, checked against the single graph and timed: 0.05-0.7 s), and the leader built it
right there: the event loop stood still that long (the benchmark's worst round, 0.54x-0.58x sync, was the round in
which gathering first formed a batch of two). The build now runs on a background thread; the requests run one
call each until it is there, and those calls are no sample of what a batch costs.
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from devicefit.interp import batched_runner
from devicefit.runtime.inline_policy import MIN_SAMPLES, InlinePolicy


def _built_on(monkeypatch) -> list[str]:
    threads: list[str] = []
    build = batched_runner.build_batched

    def recorded(*args, **kwargs):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        return build(*args, **kwargs)

    monkeypatch.setattr(batched_runner, "build_batched", recorded)
    return threads


def _wait_for(predicate, seconds: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_the_runner_builds_a_graph_its_caller_asks_ready_for_on_another_thread(small_pkg, monkeypatch):
    import devicefit

    threads = _built_on(monkeypatch)
    model = devicefit.load(small_pkg, engine="interp", cache=False)
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(2)]
    want = [model.predict(f) for f in feeds]
    runner = model.engine.batched
    assert model.engine.batch_ready(feeds)  # a first batch of two would only be counted
    model.predict_batch(feeds)  # ... as here: its graph is built on the next one
    assert threads == [] and not runner.graphs
    started = time.perf_counter()
    assert not model.engine.batch_ready(feeds)  # the next would build it: it starts elsewhere instead
    assert time.perf_counter() - started < 0.05  # and this call did not wait for it
    assert _wait_for(lambda: bool(runner.graphs) and not runner._building)
    assert threads == ["devicefit-batched-build"]
    assert model.engine.batch_ready(feeds) and [g.size for g in runner.graphs] == [2]
    for got, w in zip(model.predict_batch(feeds), want):
        for name, ref in w.items():
            np.testing.assert_allclose(got[name], ref, rtol=1e-5, atol=1e-6)
    model.unload()


def test_a_gathered_burst_builds_no_batched_graph_on_the_event_loop(small_pkg, monkeypatch):
    import devicefit

    threads = _built_on(monkeypatch)
    model = devicefit.load(small_pkg, engine="interp", max_in_flight=2, cache=False)
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(16)]
    want = [model.predict(f) for f in feeds]
    sched = model._sched_locked()
    # measured as a call far shorter than a worker's round trip: requests run on the awaiting thread, a burst
    # too (two workers would be slower for it), so the burst's requests gather there
    policy = InlinePolicy(10e-3, lanes=2)
    policy.record_call(2e-3, solo=True)
    policy.record_call(6e-3, solo=False, on_worker=True)
    for _ in range(MIN_SAMPLES):
        policy.record_handoff(4e-3)
    assert policy.prefers_inline() and not policy.backlog_prefers_workers()
    policy.record_call = lambda *args, **kwargs: None  # type: ignore[method-assign]
    policy.record_handoff = lambda *args, **kwargs: None  # type: ignore[method-assign]
    sched.policy = policy

    async def burst() -> list[dict]:
        return await asyncio.gather(*[model.predict_async(f) for f in feeds])

    try:
        for _ in range(6):
            for got, w in zip(asyncio.run(burst()), want):
                for name, ref in w.items():
                    np.testing.assert_allclose(got[name], ref, rtol=1e-5, atol=1e-6)
            _wait_for(lambda: not getattr(model.engine.batched, "_building", ()))
        assert sched.gathering.batches >= 2  # leaders took riders
        assert threads, "no batched graph was built"
        assert threading.current_thread().name not in threads, threads
    finally:
        model.unload()
    assert model.stats.submitted == model.stats.completed == 6 * 16


def _slow_builds(monkeypatch, seconds: float) -> threading.Event:
    """Builds take ``seconds`` longer; the event is set when one has started."""
    started = threading.Event()
    build = batched_runner.build_batched

    def slow(*args, **kwargs):  # type: ignore[no-untyped-def]
        started.set()
        time.sleep(seconds)
        return build(*args, **kwargs)

    monkeypatch.setattr(batched_runner, "build_batched", slow)
    return started


def test_unload_waits_for_a_background_build(small_pkg, monkeypatch):
    """An engine unloaded while a batched graph was being built left the build running on a daemon thread; a
    process ending then was aborted by the C++ runtime ('terminate called without an active exception', exit
    134: `profile_engine` with batch sizes 1,4 and 2 in flight, in a script)."""
    import devicefit

    started = _slow_builds(monkeypatch, 0.3)
    model = devicefit.load(small_pkg, engine="interp", cache=False)
    feeds = [{"x": np.full((1, 3, 8, 8), i, np.float32)} for i in range(2)]
    for f in feeds:
        model.predict(f)  # the single graph compiles on its second use
    model.predict_batch(feeds)  # counted; the next need builds
    assert not model.engine.batch_ready(feeds)  # the build starts elsewhere
    assert started.wait(10)
    model.unload()
    assert not [t for t in threading.enumerate() if t.name == "devicefit-batched-build"]


# slow (the fast suite's 15-minute budget, 2026-12-02): 9 s: a subprocess; tests/runtime/test_exit_mid_call.py keeps a process exit in the fast suite
@pytest.mark.slow
def test_a_process_ending_during_a_background_build_exits_cleanly(small_pkg, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "ends_while_building.py"
    script.write_text(
        "import threading, numpy as np, devicefit\n"
        "started = threading.Event()\n"
        "from devicefit.interp import batched_runner\n"
        "build = batched_runner.build_batched\n"
        "def slow(*a, **k):\n"
        "    started.set()\n"
        "    return [build(*a, **k) for _ in range(20)][-1]  # ~20 builds: still building at exit\n"
        "batched_runner.build_batched = slow\n"
        f"model = devicefit.load({str(small_pkg)!r}, engine='interp', cache=False)\n"
        "feeds = [{'x': np.full((1, 3, 8, 8), i, np.float32)} for i in range(2)]\n"
        "[model.predict(f) for f in feeds]\n"
        "model.predict_batch(feeds)\n"
        "assert not model.engine.batch_ready(feeds) and started.wait(30)\n"
        "print('exiting')\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=root,
        env={**__import__("os").environ, "PYTHONPATH": str(root / "src")},
    )  # fmt: skip
    assert done.returncode == 0, (done.returncode, done.stderr[-500:])
    assert "exiting" in done.stdout and "terminate called" not in done.stderr
