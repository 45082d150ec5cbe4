"""The handle's lifecycle, case by case: Dropped while closing, exception-safe and idempotent unload, and a
scheduler whose caller's event loop closed before it did."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from devicefit.engines.base import Engine, InputSpec
from devicefit.runtime import Dropped, Model
from devicefit.runtime.scheduler import InFlightScheduler

X = {"x": np.ones((1, 2), np.float32)}


class SlowUnloadEngine(Engine):
    """``_unload`` blocks until ``release`` is set (and raises when ``fail_unload``)."""

    name = "slowunload"

    def __init__(self) -> None:
        super().__init__(None, cache=False)
        self.unloading = threading.Event()
        self.release = threading.Event()
        self.fail_unload = False
        self.loads = 0

    def _load(self) -> None:
        self.inputs = [InputSpec("x", "float", (1, 2))]
        self.output_names = ["y"]
        self.loads += 1

    def _unload(self) -> None:
        self.unloading.set()
        assert self.release.wait(10)
        if self.fail_unload:
            raise RuntimeError("driver refused to release")

    def _predict(self, feeds):
        return {"y": feeds["x"] + 1}


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("devicefit-") and t.is_alive()]


def test_requests_during_closing_are_dropped_and_counted():
    engine = SlowUnloadEngine()
    model = Model(engine, max_in_flight=2).load()
    assert asyncio.run(model.predict_async(X))["y"][0, 0] == 2
    unloader = threading.Thread(target=model.unload)
    unloader.start()
    assert engine.unloading.wait(10)
    assert model.state == "closing"
    with pytest.raises(Dropped, match="being unloaded"):
        asyncio.run(model.predict_async(X))
    with pytest.raises(Dropped, match="being unloaded"):
        model.predict(X)
    engine.release.set()
    unloader.join(10)
    assert model.state == "closed" and not engine.loaded and not _workers()
    s = model.stats
    assert (s.submitted, s.completed, s.dropped) == (2, 1, 1)
    # closed is not closing: the next request loads the model again
    assert model.predict(X)["y"][0, 0] == 2 and engine.loads == 2


def test_unload_is_exception_safe_and_idempotent():
    engine = SlowUnloadEngine()
    engine.release.set()
    engine.fail_unload = True
    model = Model(engine, max_in_flight=2).load()
    asyncio.run(model.predict_async(X))  # starts a worker thread
    with pytest.raises(RuntimeError, match="driver refused"):
        model.unload()
    assert model.state == "closed" and not engine.loaded and not _workers()
    model.unload()  # nothing to do, nothing raised
    engine.fail_unload = False
    assert asyncio.run(model.predict_async(X))["y"][0, 0] == 2  # usable again
    model.unload()
    model.unload()
    assert not _workers()


def test_concurrent_unloads_wait_for_one_another():
    engine = SlowUnloadEngine()
    model = Model(engine).load()
    first = threading.Thread(target=model.unload)
    first.start()
    assert engine.unloading.wait(10)
    second_done = threading.Event()
    second = threading.Thread(target=lambda: (model.unload(), second_done.set()))
    second.start()
    assert not second_done.wait(0.05)  # it waits for the unload under way rather than returning early
    engine.release.set()
    first.join(10)
    second.join(10)
    assert second_done.is_set() and model.state == "closed"


def test_scheduler_close_after_the_callers_loop_closed():
    gate = threading.Event()
    started = threading.Event()

    def run(feeds):
        started.set()
        assert gate.wait(10)
        return feeds

    sched = InFlightScheduler(run, max_in_flight=1, overflow="wait", max_queue=None)
    loop = asyncio.new_event_loop()

    async def submit_and_leave():
        tasks = [loop.create_task(sched.submit(i)) for i in range(3)]
        await asyncio.to_thread(started.wait, 10)
        for _ in range(5):
            await asyncio.sleep(0)
        return tasks

    tasks = loop.run_until_complete(submit_and_leave())
    assert sched.queued == 2
    loop.close()  # the caller went away with requests queued (their futures can never be resolved)
    gate.set()
    sched.close(timeout=10)  # used to raise RuntimeError('Event loop is closed') from _drop
    sched.close(timeout=10)  # idempotent
    assert not [t for t in sched.threads() if t.is_alive()]
    s = sched.stats
    assert (s.submitted, s.completed, s.dropped) == (3, 1, 2)
    for t in tasks:  # they can never finish: their loop is gone (that is the point), so no GC warning
        t._log_destroy_pending = False
