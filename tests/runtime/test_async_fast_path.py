"""Async requests shorter than a thread handoff run on the caller's thread; predict_batch stacks by bounded bytes."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np

from devicefit.engines.base import MAX_STACKED_INPUT_BYTES, Engine, InputSpec
from devicefit.runtime import Model


class ThreadRecorder(Engine):
    """Records the thread and batch size of each call; sleeps ``delay_s``."""

    name = "recorder"

    def __init__(self, delay_s: float = 0.0, width: int = 4) -> None:
        super().__init__(None, cache=False)
        self.delay_s = delay_s
        self.width = width
        self.threads: list[str] = []
        self.batch_sizes: list[int] = []

    def _load(self) -> None:
        self.inputs = [InputSpec("x", "float", (None, self.width))]
        self.output_names = ["y"]

    def _predict(self, feeds):
        self.threads.append(threading.current_thread().name)
        self.batch_sizes.append(int(feeds["x"].shape[0]))
        if self.delay_s:
            time.sleep(self.delay_s)
        return {"y": feeds["x"] * 2}


def _run_async(model: Model, n: int) -> list[dict]:
    async def main():
        return await asyncio.gather(
            *(model.predict_async({"x": np.full((1, 4), i, np.float32)}) for i in range(n))
        )

    return asyncio.run(main())


def test_cheap_calls_run_inline_with_exact_results_and_accounting():
    engine = ThreadRecorder()
    # "cheap" is whatever averages below inline_below_s: a generous threshold keeps this independent of the
    # machine's load (the default, 0.1 ms, is what the benchmark motivates)
    with Model(engine, max_in_flight=2, inline_below_s=1.0) as model:
        first = _run_async(model, 1)  # goes to a worker thread, which measures the engine call
        results = _run_async(model, 50)
        s = model.stats
    assert [float(r["y"][0, 0]) for r in first + results] == [0.0] + [2.0 * i for i in range(50)]
    # calls known to be that short then stay on the caller's thread
    assert engine.threads[0].startswith("devicefit-") and set(engine.threads[1:]) == {"MainThread"}
    assert s.submitted == s.completed == 51 and s.peak_in_flight <= 2


def test_slow_calls_and_disabled_fast_path_use_workers():
    slow = ThreadRecorder(delay_s=0.002)
    with Model(slow, max_in_flight=2) as model:
        _run_async(model, 10)
    assert all(t.startswith("devicefit-") for t in slow.threads)
    fast = ThreadRecorder()
    with Model(fast, max_in_flight=2, inline_below_s=None) as model:
        _run_async(model, 20)
    assert all(t.startswith("devicefit-") for t in fast.threads)


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
