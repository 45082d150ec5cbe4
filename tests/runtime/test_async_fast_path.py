"""Async requests shorter than a thread handoff run on the caller's thread (decided from measurements, timed here
with a fake clock); predict_batch stacks by bounded bytes."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np

from devicefit.engines.base import MAX_STACKED_INPUT_BYTES, Engine, InputSpec
from devicefit.runtime import Model
from devicefit.runtime.inline_policy import BURST


class TickClock:
    """A fake clock: every read moves it by ``tick`` (a thread handoff reads it at least twice), engines add
    their simulated durations with ``advance``. Timing decisions then depend on no real time at all."""

    def __init__(self, tick: float = 100e-6) -> None:
        self.tick = tick
        self.now = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            now = self.now
            self.now += self.tick
            return now

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


class ThreadRecorder(Engine):
    """Records the thread and batch size of each call; takes ``cost_s`` on ``clock`` (no real time)."""

    name = "recorder"

    def __init__(self, cost_s: float = 1e-6, width: int = 4, clock: TickClock | None = None) -> None:
        super().__init__(None, cache=False)
        self.cost_s = cost_s
        self.width = width
        self.clock = clock
        self.threads: list[str] = []
        self.batch_sizes: list[int] = []

    def _load(self) -> None:
        self.inputs = [InputSpec("x", "float", (None, self.width))]
        self.output_names = ["y"]

    def _predict(self, feeds):
        self.threads.append(threading.current_thread().name)
        self.batch_sizes.append(int(feeds["x"].shape[0]))
        if self.clock is not None:
            self.clock.advance(self.cost_s)
        return {"y": feeds["x"] * 2}


def _model(engine: Engine, clock: TickClock, **options) -> Model:
    model = Model(engine, **options)
    model._clock = clock
    return model


def _one_by_one(model: Model, n: int, start: int = 0) -> list[dict]:
    async def main():
        return [
            await model.predict_async({"x": np.full((1, 4), i, np.float32)}) for i in range(start, start + n)
        ]

    return asyncio.run(main())


def test_calls_shorter_than_a_handoff_run_inline_after_measuring_both():
    clock = TickClock(tick=100e-6)
    engine = ThreadRecorder(cost_s=1e-6, clock=clock)  # ~1 tick per call vs >= 2 ticks per handoff
    with _model(engine, clock, max_in_flight=2) as model:
        learn = _one_by_one(model, 1 + BURST)  # a probe (alone, on a worker), then a burst to workers
        results = _one_by_one(model, 50, start=len(learn))
        s = model.stats
        policy = model._scheduler.policy
    assert [float(r["y"][0, 0]) for r in learn + results] == [2.0 * i for i in range(len(learn) + 50)]
    assert all(t.startswith("devicefit-") for t in engine.threads[: 1 + BURST])
    assert set(engine.threads[1 + BURST :]) == {"MainThread"}, policy
    assert s.submitted == s.completed == 51 + BURST and s.peak_in_flight <= 2


def test_calls_longer_than_the_cap_and_disabled_fast_path_use_workers():
    clock = TickClock(tick=100e-6)
    slow = ThreadRecorder(cost_s=2e-3, clock=clock)  # longer than INLINE_BELOW_S: never blocks the loop
    with _model(slow, clock, max_in_flight=2) as model:
        _one_by_one(model, 40)
    assert all(t.startswith("devicefit-") for t in slow.threads)
    fast = ThreadRecorder(clock=clock)
    with _model(fast, clock, max_in_flight=2, inline_below_s=None) as model:
        _one_by_one(model, 20)
    assert all(t.startswith("devicefit-") for t in fast.threads)


class ContendedEngine(ThreadRecorder):
    """Cheap alone (``cost_s``), slow when another call runs beside it (``contended_s``, also slept for real so
    a scheduler timing with the real clock sees it). Worker calls wait (up to a bound) for a partner, so
    under two callers every worker call overlaps another, as it does on a busy 2-core machine."""

    def __init__(self, clock: TickClock) -> None:
        super().__init__(cost_s=1e-6, clock=clock)
        self.contended_s = 3e-3
        self.active = 0
        self.cond = threading.Condition()

    def _predict(self, feeds):
        with self.cond:
            self.active += 1
            self.cond.notify_all()
            if threading.current_thread().name.startswith("devicefit-"):
                self.cond.wait_for(lambda: self.active > 1, timeout=0.2)
            contended = self.active > 1
        try:
            if contended:
                time.sleep(self.contended_s)
                self.clock.advance(self.contended_s)
            return super()._predict(feeds)
        finally:
            with self.cond:
                self.active -= 1


def test_contended_worker_calls_do_not_keep_a_cheap_model_off_the_inline_path():
    """The bug: the call time was a moving average over every call, measured on workers that overlapped one
    another under two callers, so it stayed far above the cheap model's real cost and inline never started."""
    clock = TickClock(tick=100e-6)
    engine = ContendedEngine(clock)

    async def caller(model: Model, n: int) -> None:
        for _ in range(n):
            await model.predict_async({"x": np.ones((1, 4), np.float32)})

    async def two_callers(model: Model) -> None:
        await asyncio.gather(caller(model, 40), caller(model, 40))

    with _model(engine, clock, max_in_flight=2) as model:
        asyncio.run(two_callers(model))
        s = model.stats
        policy = model._scheduler.policy
    # after the probe (alone: cheap) and the burst that measured the handoff, requests run inline
    assert engine.threads[-10:] == ["MainThread"] * 10, (engine.threads, policy)
    assert s.submitted == s.completed == 80 and s.peak_in_flight <= 2


def test_predict_batch_stacks_at_most_the_byte_budget():
    width = 4096  # 16 KiB of float32 per sample
    engine = ThreadRecorder(width=width)
    with Model(engine) as model:
        feeds = [{"x": np.full((1, width), i, np.float32)} for i in range(40)]
        out = model.predict_batch(feeds)
    per_call = MAX_STACKED_INPUT_BYTES // (width * 4)
    assert engine.batch_sizes == [per_call, per_call, 40 - 2 * per_call]
    assert [float(o["y"][0, 0]) for o in out] == [2.0 * i for i in range(40)]
    small = ThreadRecorder()
    with Model(small) as model:
        model.predict_batch([{"x": np.ones((1, 4), np.float32)}] * 400)
    assert small.batch_sizes == [400]  # small samples still stack all at once
