"""Request coalescing: queued predict_async requests with equal input shapes run as one engine batch call."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from devicefit.engines.base import InputSpec
from devicefit.runtime import Model
from devicefit.runtime.handle import PredictionError
from tests.runtime.test_concurrency import GateEngine


class BatchSizes(GateEngine):
    """GateEngine that records every call's batch size and may cap how many requests one call takes."""

    def __init__(self, limit: int | None = None, fixed: bool = False) -> None:
        super().__init__()
        self.sizes: list[int] = []
        self.limit = limit
        self.fixed = fixed

    def _load(self) -> None:
        super()._load()
        if self.fixed:
            self.inputs = [InputSpec("x", "float", (1, None))]
        else:
            self.inputs = [InputSpec("x", "float", (None, None))]

    def _predict(self, feeds):
        self.sizes.append(int(feeds["x"].shape[0]))
        return super()._predict(feeds)

    def request_batch_limit(self) -> int:
        return super().request_batch_limit() if self.limit is None else self.limit


def row(value: float, width: int = 2, gated: bool = False) -> dict:
    x = np.full((1, width), value, np.float32)
    x[0, 1] = 1.0 if gated else 0.0
    x[0, 0] = value
    return {"x": x}


def run_behind_gate(engine: BatchSizes, queued: list[dict], **options):
    """One gated request holds the only slot while ``queued`` requests wait; then the gate opens."""

    async def main():
        with Model(engine, max_in_flight=1, **options) as m:
            first = asyncio.ensure_future(m.predict_async(row(0.5, gated=True)))
            await asyncio.to_thread(engine.started.acquire)
            rest = [asyncio.ensure_future(m.predict_async(f)) for f in queued]
            await asyncio.sleep(0.02)  # every request queued behind the gated one
            engine.gate.set()
            results = await asyncio.gather(first, *rest, return_exceptions=True)
            return results, m.stats, m._scheduler.batched_runs

    return asyncio.run(main())


def test_queued_requests_run_together_and_each_gets_its_own_result():
    engine = BatchSizes()
    queued = [row(0.001 * (i + 1)) for i in range(6)]
    results, stats, batched = run_behind_gate(engine, queued)
    assert engine.sizes == [1, 6]  # the gated one alone, then the six queued in one call
    assert batched == 1
    for feeds, out in zip(queued, results[1:]):
        np.testing.assert_array_equal(out["y"], feeds["x"] * 2)
    assert (stats.submitted, stats.completed) == (7, 7)


def test_a_batch_call_takes_at_most_the_engines_limit():
    engine = BatchSizes(limit=3)
    _results, stats, _ = run_behind_gate(engine, [row(0.001 * (i + 1)) for i in range(7)])
    assert engine.sizes == [1, 3, 3, 1]
    assert stats.completed == 8


def test_a_model_with_a_fixed_batch_runs_one_call_per_request():
    engine = BatchSizes(fixed=True)
    _results, stats, batched = run_behind_gate(engine, [row(0.001 * (i + 1)) for i in range(4)])
    assert engine.sizes == [1, 1, 1, 1, 1] and batched == 0
    assert stats.completed == 5


def test_only_requests_shaped_alike_share_a_call():
    engine = BatchSizes()
    queued = [row(0.001, 2), row(0.002, 2), row(0.003, 3), row(0.004, 3), row(0.005, 2)]
    results, stats, _ = run_behind_gate(engine, queued)
    # FIFO: the head takes the requests behind it while they match its shapes, never jumping the queue
    assert engine.sizes == [1, 2, 2, 1]
    for feeds, out in zip(queued, results[1:]):
        np.testing.assert_array_equal(out["y"], feeds["x"] * 2)
    assert stats.completed == 6


def test_a_failing_request_fails_alone_and_its_batch_mates_complete():
    engine = BatchSizes()
    bad = row(0.002)
    bad["x"][0, 0] = np.nan
    queued = [row(0.001), bad, row(0.003)]
    results, stats, _ = run_behind_gate(engine, queued)
    assert isinstance(results[2], PredictionError) and "kernel exploded" in str(results[2])
    np.testing.assert_array_equal(results[1]["y"], queued[0]["x"] * 2)
    np.testing.assert_array_equal(results[3]["y"], queued[2]["x"] * 2)
    assert (stats.submitted, stats.completed, stats.failed) == (4, 3, 1)


def test_a_cancelled_request_in_a_batch_is_counted_cancelled_and_the_rest_complete():
    engine = BatchSizes()

    async def main():
        with Model(engine, max_in_flight=1) as m:
            first = asyncio.ensure_future(m.predict_async(row(0.5, gated=True)))
            await asyncio.to_thread(engine.started.acquire)
            slow = asyncio.ensure_future(m.predict_async(row(30.0)))  # 30 ms: the batch runs a while
            mate = asyncio.ensure_future(m.predict_async(row(30.0)))
            await asyncio.sleep(0.02)
            engine.gate.set()
            await first
            await asyncio.to_thread(engine.started.acquire)  # the batch of two is on the engine
            mate.cancel()
            done = await asyncio.gather(slow, mate, return_exceptions=True)
            return done, m.stats

    (out, cancelled), stats = asyncio.run(main())
    assert engine.sizes == [1, 2]
    assert isinstance(out, dict) and isinstance(cancelled, asyncio.CancelledError)
    assert (stats.submitted, stats.completed, stats.cancelled) == (3, 2, 1)


@pytest.mark.parametrize("overflow", ["drop_oldest", "wait"])
def test_coalescing_keeps_the_overflow_policies(overflow):
    engine = BatchSizes()
    options = {"overflow": overflow, "max_queue": 2} if overflow == "drop_oldest" else {}
    _results, stats, _ = run_behind_gate(engine, [row(0.001 * (i + 1)) for i in range(4)], **options)
    if overflow == "drop_oldest":
        assert sum(engine.sizes) == 3 and stats.dropped == 2  # the two oldest waiting were dropped unrun
    else:
        assert sum(engine.sizes) == 5 and stats.completed == 5
