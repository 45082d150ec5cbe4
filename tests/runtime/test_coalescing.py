"""Request coalescing: queued predict_async requests with equal input shapes run as one engine batch call."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import numpy as np
import pytest

from devicefit.engines.base import InputSpec
from devicefit.runtime import Model
from devicefit.runtime.handle import PredictionError
from devicefit.runtime.workers import MIN_SINGLES
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


WARM_UP = MIN_SINGLES + 1  # a new worker's first call is no sample (it started the thread)


async def warm_up(m: Model, engine: BatchSizes) -> None:
    """Run the single calls coalescing judges batches by (workers.MIN_SINGLES), then forget them in ``engine``."""
    for _ in range(WARM_UP):
        await m.predict_async(row(0.5))
    for _ in range(WARM_UP):
        engine.started.acquire(blocking=False)
    engine.sizes.clear()


def run_behind_gate(engine: BatchSizes, queued: list[dict], **options):
    """One gated request holds the only slot while ``queued`` requests wait; then the gate opens.

    Every request on the worker (``inline_below_s=None``), after a warm-up whose requests are left out of the
    returned stats.
    """

    async def main():
        with Model(engine, max_in_flight=1, inline_below_s=None, **options) as m:
            await warm_up(m, engine)
            first = asyncio.ensure_future(m.predict_async(row(0.5, gated=True)))
            await asyncio.to_thread(engine.started.acquire)
            rest = [asyncio.ensure_future(m.predict_async(f)) for f in queued]
            await asyncio.sleep(0.02)  # every request queued behind the gated one
            engine.gate.set()
            results = await asyncio.gather(first, *rest, return_exceptions=True)
            stats = dataclasses.replace(
                m.stats, submitted=m.stats.submitted - WARM_UP, completed=m.stats.completed - WARM_UP
            )
            return results, stats, m._scheduler.batched_runs

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
        with Model(engine, max_in_flight=1, inline_below_s=None) as m:
            await warm_up(m, engine)
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
    assert (stats.submitted - WARM_UP, stats.completed - WARM_UP, stats.cancelled) == (3, 2, 1)


@pytest.mark.parametrize("overflow", ["drop_oldest", "wait"])
def test_coalescing_keeps_the_overflow_policies(overflow):
    engine = BatchSizes()
    options = {"overflow": overflow, "max_queue": 2} if overflow == "drop_oldest" else {}
    _results, stats, _ = run_behind_gate(engine, [row(0.001 * (i + 1)) for i in range(4)], **options)
    if overflow == "drop_oldest":
        assert sum(engine.sizes) == 3 and stats.dropped == 2  # the two oldest waiting were dropped unrun
    else:
        assert sum(engine.sizes) == 5 and stats.completed == 5


# ---------------------------------------------------------------- gathering: many callers, calls on the caller


def _tiny_state():  # type: ignore[no-untyped-def]
    """As a tiny model measures: requests run on the awaiting thread, and a backlog stays there too."""
    from tests.runtime.test_burst_to_workers import CALL_S, _policy

    policy = _policy(worker_call_s=3 * CALL_S, handoff_s=2 * CALL_S)
    assert policy.prefers_inline() and not policy.backlog_prefers_workers()
    return policy


def _run_callers(engine: BatchSizes, make_calls) -> tuple[list, object, int]:  # type: ignore[no-untyped-def]
    async def main():
        with Model(engine, max_in_flight=2) as m:
            m.predict(row(0.001))
            engine.sizes.clear()
            m._sched_locked().policy = _tiny_state()
            results = await make_calls(m)
            return results, m.stats, m._scheduler.gathering.batches

    return asyncio.run(main())


def test_requests_made_at_once_by_many_callers_run_in_batch_calls_on_the_awaiting_thread():
    engine = BatchSizes(limit=8)
    feeds = [row(0.001 * (i + 1)) for i in range(20)]

    async def calls(m):  # type: ignore[no-untyped-def]
        return await asyncio.gather(*[m.predict_async(f) for f in feeds])

    results, stats, batches = _run_callers(engine, calls)
    assert sum(engine.sizes) == 20 and max(engine.sizes) == 8 and batches >= 2
    for f, out in zip(feeds, results):
        np.testing.assert_array_equal(out["y"], f["x"] * 2)
    assert (stats.submitted, stats.completed, stats.settled) == (20, 20, 20)


class NoBatchGain(BatchSizes):
    """A batch of k costs k calls (a tiny model, where stacking saves nothing)."""

    def _predict(self, feeds):
        x = feeds["x"]
        time.sleep(float(x[0, 0]) / 1e3 * (len(x) - 1))  # the rest of the batch: k calls' time in all
        return super()._predict(feeds)


def _two_closed_loop_callers(m, ms: float, each: int = 40):  # type: ignore[no-untyped-def]
    async def caller(k: int) -> list:
        return [await m.predict_async(row(ms + 1e-6 * (k + i))) for i in range(each)]

    return asyncio.gather(caller(0), caller(1000))


@pytest.mark.parametrize(("engine_type", "gathers"), [(BatchSizes, True), (NoBatchGain, False)])
def test_two_closed_loop_callers_gather_only_where_a_batch_is_measured_cheaper(engine_type, gathers):
    # the policy's call alone is CALL_S (2 ms): each request here sleeps 2 ms; a batch of two costs 2 ms in
    # all (BatchSizes: 1 ms a request, gathering pays) or 4 ms (NoBatchGain: nothing saved, the turn is a loss)
    from devicefit.runtime.gather import TRIAL

    engine = engine_type()

    async def calls(m):  # type: ignore[no-untyped-def]
        return await _two_closed_loop_callers(m, 2.0)

    results, stats, batches = _run_callers(engine, calls)
    assert stats.completed == 80
    for k, outs in enumerate(results):
        for i, out in enumerate(outs):
            assert out["y"][0, 0] == pytest.approx(2 * (2.0 + 1e-6 * (1000 * k + i)))
    if gathers:
        assert batches >= 30 and max(engine.sizes) == 2
    else:
        assert 1 <= batches <= TRIAL  # the trial measured it, then each request ran alone
        assert engine.sizes.count(1) >= 80 - 2 * TRIAL


def test_a_failing_request_in_a_gathered_batch_fails_alone():
    engine = BatchSizes()
    feeds = [row(0.001 * (i + 1)) for i in range(8)]
    feeds[3]["x"][0, 0] = np.nan

    async def calls(m):  # type: ignore[no-untyped-def]
        return await asyncio.gather(*[m.predict_async(f) for f in feeds], return_exceptions=True)

    results, stats, batches = _run_callers(engine, calls)
    assert batches >= 1
    assert isinstance(results[3], PredictionError) and "kernel exploded" in str(results[3])
    assert all(isinstance(r, dict) for i, r in enumerate(results) if i != 3)
    assert (stats.submitted, stats.completed, stats.failed) == (8, 7, 1)


def test_a_gathered_request_cancelled_before_it_runs_never_runs_and_is_counted_once():
    engine = BatchSizes()

    # request 5 is shaped otherwise, so the leader before it does not take it: it still waits when cancelled
    feeds = [row(0.001 * (i + 1), width=3 if i == 5 else 2) for i in range(8)]

    async def calls(m):  # type: ignore[no-untyped-def]
        tasks = [asyncio.ensure_future(m.predict_async(f)) for f in feeds]
        await asyncio.sleep(0)  # the requests after the first few now wait for their turn in the gathering
        tasks[5].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results, stats, batches = _run_callers(engine, calls)
    assert isinstance(results[5], asyncio.CancelledError) and batches == 2
    assert sum(engine.sizes) == 7  # the cancelled request never reached the engine
    for i in (6, 7):  # the requests behind it gathered without it
        np.testing.assert_array_equal(results[i]["y"], feeds[i]["x"] * 2)
    assert (stats.submitted, stats.completed, stats.cancelled) == (8, 7, 1)


def test_a_gathered_request_cancelled_after_its_leader_ran_it_is_counted_cancelled_only():
    engine = BatchSizes()

    async def calls(m):  # type: ignore[no-untyped-def]
        tasks = [asyncio.ensure_future(m.predict_async(row(0.001 * (i + 1)))) for i in range(8)]
        await asyncio.sleep(0)
        tasks[5].cancel()  # delivered at its next step: after the leader ran it with the others
        return await asyncio.gather(*tasks, return_exceptions=True)

    results, stats, _ = _run_callers(engine, calls)
    assert isinstance(results[5], asyncio.CancelledError)
    assert (stats.submitted, stats.completed, stats.cancelled, stats.settled) == (8, 7, 1, 8)


@pytest.mark.parametrize(("max_batch", "sizes"), [(1, [1] * 7), (2, [1, 2, 2, 2])])
def test_max_batch_caps_or_turns_off_coalescing(max_batch, sizes):
    engine = BatchSizes()
    _, stats, _ = run_behind_gate(engine, [row(0.001 * (i + 1)) for i in range(6)], max_batch=max_batch)
    assert engine.sizes == sizes and stats.completed == 7


@pytest.mark.parametrize("bad", [0, -1, 2.5, "4"])
def test_a_bad_max_batch_is_one_clear_error(bad):
    from devicefit.errors import InputError

    with pytest.raises(InputError, match="max_batch must be a positive integer"):
        Model(BatchSizes(), max_batch=bad)


class SlowerBatched(BatchSizes):
    """A batch of k costs 1.5 k calls: batching loses (a 160 px CNN batched ran at 0.93x per sample)."""

    def _predict(self, feeds):
        x = feeds["x"]
        if len(x) > 1:
            time.sleep(float(x[0, 0]) / 1e3 * (1.5 * len(x) - 1))
        return super()._predict(feeds)


def test_workers_stop_coalescing_where_a_batch_is_measured_slower_per_request():
    # a worker's call is 2 ms (the frozen policy); each batch size class (4-7, 3, 2) is batched MIN_SAMPLES times
    # to measure it (3 ms a request), then runs one call per request (before: every backlog batched: 160 px CNN bursts at
    # 1.46x sync against 1.86x with one call per request)
    from tests.runtime.test_burst_to_workers import CALL_S, _policy

    engine = SlowerBatched()

    async def main():
        with Model(engine, max_in_flight=1) as m:
            m._sched_locked().policy = _policy(worker_call_s=CALL_S, handoff_s=0.1 * CALL_S)
            for _ in range(12):
                engine.gate.clear()
                first = asyncio.ensure_future(m.predict_async(row(2.0, gated=True)))
                await asyncio.to_thread(engine.started.acquire)
                rest = [asyncio.ensure_future(m.predict_async(row(2.0 + 1e-3 * i))) for i in range(4)]
                await asyncio.sleep(0.02)
                engine.gate.set()
                await asyncio.gather(first, *rest)
                for _ in range(len(engine.sizes) - 1):
                    engine.started.acquire(blocking=False)
            return m.stats

    from devicefit.runtime.batch_costs import MIN_SAMPLES

    stats = asyncio.run(main())
    assert engine.sizes[:5] == [1, 1, 1, 1, 1]  # single calls measured first (workers.MIN_SINGLES)
    assert engine.sizes[5:7] == [1, 4]  # then the batch measured
    assert engine.sizes[-5:] == [1, 1, 1, 1, 1]  # every class measured slower: one call per request
    assert sorted(set(engine.sizes)) == [1, 2, 3, 4]
    assert all(engine.sizes.count(k) <= MIN_SAMPLES for k in (2, 3, 4))  # measured, then no more
    assert stats.completed == 60


def test_a_batch_call_that_also_built_its_graph_is_no_sample_of_its_cost():
    # the interpreter builds a size's batched graph on its second use (0.05-0.7 s): one such call read 35 ms a
    # request for a CNN whose batches cost 0.4 ms, and turned its coalescing off for good
    from devicefit.runtime.batch_costs import MIN_SAMPLES, BatchCosts

    costs = BatchCosts()
    costs.record(8, 8 * 35e-3)  # the build
    assert costs.decide(8, 0.7e-3) == "measure"  # one sample decides nothing
    for _ in range(MIN_SAMPLES):
        costs.record(8, 8 * 0.4e-3)
    assert costs.estimate(8) == pytest.approx(0.4e-3)
    assert costs.decide(8, 0.7e-3) == "yes" and costs.decide(8, 0.3e-3) == "no"


def test_the_batch_key_separates_names_shapes_and_dtypes():
    from devicefit.runtime.workers import _shapes

    f32 = np.zeros((1, 4), np.float32)
    assert _shapes({"x": f32}) == _shapes({"x": np.ones((1, 4), np.float32)})
    assert _shapes({"x": f32}) != _shapes({"x": np.zeros((1, 4), np.float64)})
    assert _shapes({"x": f32}) != _shapes({"x": np.zeros((1, 5), np.float32)})
    assert _shapes({"x": f32}) != _shapes({"y": f32})
    two = {"a": f32, "b": np.zeros((1, 2), np.int32)}
    assert _shapes(two) == _shapes({"a": f32.copy(), "b": np.ones((1, 2), np.int32)})
    assert _shapes(two) != _shapes({"a": f32, "b": np.zeros((1, 2), np.int64)})
    assert _shapes({"x": 1}) == _shapes({"x": 2})  # not arrays: no shape to tell them apart
    assert _shapes(3) == 3 and _shapes(3) != _shapes(4)  # not a mapping: equal values only
