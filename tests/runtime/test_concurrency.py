"""predict_async: bounded in-flight (proven by instrumenting the engine), overflow policies, cancellation,
failures isolated to one request, no leaked threads."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from devicefit.engines.base import Engine, InputSpec
from devicefit.errors import InputError
from devicefit.runtime import Dropped, Model, PredictionError, Rejected


class GateEngine(Engine):
    """Counts concurrent calls; each call sleeps x[0, 0] ms, or waits on ``gate`` when x[0, 1] > 0;
    NaN input fails inside the engine."""

    name = "gate"

    def __init__(self) -> None:
        super().__init__(None, cache=False)
        self.active = 0
        self.max_active = 0
        self.calls: list[float] = []
        self.samples = 0  # requests that reached the engine (queued requests may run together, stacked)
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.started = threading.Semaphore(0)

    def _load(self) -> None:
        self.inputs = [InputSpec("x", "float", (None, 2))]
        self.output_names = ["y"]

    def _predict(self, feeds):
        x = feeds["x"]
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.calls.append(float(x[0, 0]))
            self.samples += x.shape[0]
        self.started.release()
        try:
            if np.isnan(x).any():
                raise RuntimeError("kernel exploded\nsecond line")
            if x[0, 1] > 0:
                assert self.gate.wait(10)
            else:
                time.sleep(float(x[0, 0]) / 1e3)
            return {"y": x * 2}
        finally:
            with self.lock:
                self.active -= 1


def req(ms: float = 1.0, gated: bool = False, tag: float = 0.0) -> dict:
    return {"x": np.array([[ms + tag * 1e-6, 1.0 if gated else 0.0]], np.float32)}


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("devicefit-")]


def test_bounded_in_flight_and_results():
    engine = GateEngine()

    async def main():
        with Model(engine, max_in_flight=3) as m:
            outs = await asyncio.gather(*(m.predict_async(req(2, tag=i)) for i in range(40)))
            assert m.stats.completed == 40 and m.stats.peak_in_flight == 3
            return outs

    outs = asyncio.run(main())
    assert engine.max_active == 3  # instrumentation inside the engine, not the scheduler's own count
    assert [round(float(o["y"][0, 0]) / 2 - 2, 3) for o in outs[:3]] == [0.0, 0.0, 0.0]
    assert not _workers()


def test_drop_oldest_completes_stale_with_dropped():
    engine = GateEngine()

    async def main():
        with Model(engine, max_in_flight=1, overflow="drop_oldest", max_queue=2) as m:
            running = asyncio.ensure_future(m.predict_async(req(1, gated=True, tag=0)))
            await asyncio.to_thread(engine.started.acquire)  # the first request is on the engine now
            waiting = [asyncio.ensure_future(m.predict_async(req(1, tag=i))) for i in (1, 2, 3, 4)]
            await asyncio.sleep(0.01)
            engine.gate.set()
            results = await asyncio.gather(running, *waiting, return_exceptions=True)
            return results, m.stats

    results, stats = asyncio.run(main())
    assert isinstance(results[1], Dropped) and isinstance(results[2], Dropped)  # the two oldest waiting
    assert all(isinstance(r, dict) for r in (results[0], results[3], results[4]))
    assert "fresher request" in str(results[1])
    assert (stats.submitted, stats.completed, stats.dropped) == (5, 3, 2)
    assert engine.samples == 3  # dropped requests never reached the engine


def test_reject_when_full():
    engine = GateEngine()

    async def main():
        with Model(engine, max_in_flight=1, overflow="reject") as m:
            first = asyncio.ensure_future(m.predict_async(req(1, gated=True)))
            await asyncio.to_thread(engine.started.acquire)
            with pytest.raises(Rejected, match="at capacity"):
                await m.predict_async(req())
            engine.gate.set()
            await first
            await m.predict_async(req())  # capacity is back
            return m.stats

    stats = asyncio.run(main())
    assert (stats.submitted, stats.completed, stats.rejected) == (3, 2, 1)


def test_cancel_waiting_never_runs_and_cancel_running_releases_slot():
    engine = GateEngine()

    async def main():
        with Model(engine, max_in_flight=1) as m:
            running = asyncio.ensure_future(m.predict_async(req(1, gated=True, tag=1)))
            await asyncio.to_thread(engine.started.acquire)
            waiting = asyncio.ensure_future(m.predict_async(req(1, tag=2)))
            await asyncio.sleep(0.01)
            waiting.cancel()
            running.cancel()
            for t in (waiting, running):
                with pytest.raises(asyncio.CancelledError):
                    await t
            engine.gate.set()  # the running call returns; its slot must be free again
            out = await asyncio.wait_for(m.predict_async(req(1, tag=3)), 5)
            return out, m.stats

    out, stats = asyncio.run(main())
    assert float(out["y"][0, 0]) == pytest.approx(2 * (1 + 3e-6), rel=1e-6)
    assert [round((c - 1) * 1e6) for c in engine.calls] == [1, 3]  # the cancelled waiting one never ran
    assert stats.cancelled == 2 and stats.completed == 1 and stats.submitted == 3
    assert not _workers()


def test_cancel_while_waiting_for_admission():
    engine = GateEngine()

    async def main():
        with Model(engine, max_in_flight=1, overflow="wait", max_queue=0) as m:
            running = asyncio.ensure_future(m.predict_async(req(1, gated=True)))
            await asyncio.to_thread(engine.started.acquire)
            blocked = asyncio.ensure_future(m.predict_async(req()))
            await asyncio.sleep(0.01)
            assert not blocked.done()  # backpressure: not admitted while full
            blocked.cancel()
            engine.gate.set()
            await running
            with pytest.raises(asyncio.CancelledError):
                await blocked
            return m.stats

    stats = asyncio.run(main())
    assert (stats.submitted, stats.completed, stats.cancelled) == (2, 1, 1)
    assert len(engine.calls) == 1


def test_failure_is_isolated_and_bad_input_rejected_early():
    engine = GateEngine()

    async def main():
        with Model(engine, max_in_flight=2) as m:
            bad = {"x": np.array([[np.nan, 0]], np.float32)}
            results = await asyncio.gather(
                m.predict_async(req()), m.predict_async(bad), m.predict_async(req()), return_exceptions=True
            )
            with pytest.raises(InputError, match="has shape 3"):
                await m.predict_async({"x": np.zeros(3, np.float32)})
            return results, m.stats

    results, stats = asyncio.run(main())
    assert isinstance(results[1], PredictionError) and "\n" not in str(results[1])
    assert isinstance(results[0], dict) and isinstance(results[2], dict)
    assert (stats.submitted, stats.completed, stats.failed) == (3, 2, 1)  # the bad-shape one never entered
    with Model(GateEngine()) as m:  # sync path: same isolation
        with pytest.raises(PredictionError, match="kernel exploded"):
            m.predict({"x": np.array([[np.nan, 0]], np.float32)})
        assert m.predict(req())["y"].shape == (1, 2)


def test_unload_drops_queued_and_joins_threads():
    engine = GateEngine()

    async def main():
        m = Model(engine, max_in_flight=1).load()
        running = asyncio.ensure_future(m.predict_async(req(1, gated=True)))
        await asyncio.to_thread(engine.started.acquire)
        queued = asyncio.ensure_future(m.predict_async(req()))
        await asyncio.sleep(0.01)
        threading.Timer(0.05, engine.gate.set).start()
        await asyncio.to_thread(m.unload)
        r = await asyncio.gather(running, queued, return_exceptions=True)
        return r, m

    (first, second), m = asyncio.run(main())
    assert isinstance(first, dict) and isinstance(second, Dropped) and "unloaded" in str(second)
    assert not _workers() and not m.loaded
    assert m.stats.submitted == m.stats.completed + m.stats.dropped == 2


def test_stream_keeps_freshest():
    engine = GateEngine()

    async def frames():
        for i in range(30):
            yield req(3, tag=i)  # the engine takes 3 ms per frame
            await asyncio.sleep(0.0005)  # produced every 0.5 ms

    async def main():
        with Model(engine) as m:
            return [r async for r in m.stream(frames(), keep=1)]

    results = asyncio.run(main())
    indices = [r.index for r in results]
    assert indices == sorted(indices) and indices[-1] == 29  # the last frame is always processed
    assert len(results) < 30 and sum(r.skipped for r in results) == 30 - len(results)


def test_many_tasks_accounting_exact():
    engine = GateEngine()

    async def main():
        with Model(engine, max_in_flight=2, overflow="drop_oldest", max_queue=2) as m:
            res = await asyncio.gather(
                *(m.predict_async(req(0.2, tag=i)) for i in range(300)), return_exceptions=True
            )
            return res, m.stats

    res, stats = asyncio.run(main())
    ok = sum(isinstance(r, dict) for r in res)
    dropped = sum(isinstance(r, Dropped) for r in res)
    assert ok + dropped == 300 and stats.completed == ok and stats.dropped == dropped
    # capacity is running + waiting <= max_in_flight + max_queue (idle workers may not have picked yet)
    assert stats.peak_in_flight <= 2 and engine.max_active <= 2 and stats.peak_queued <= 4


def test_handle_options_validated():
    with pytest.raises(InputError, match="overflow"):
        Model(GateEngine(), overflow="lifo")
    with pytest.raises(InputError, match="max_in_flight"):
        Model(GateEngine(), max_in_flight=0)
