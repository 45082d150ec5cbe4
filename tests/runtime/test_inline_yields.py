"""Requests run inline on the event loop's thread still let the loop run other tasks: an ``await`` that never
suspends would let one caller's loop of ``await predict_async(...)`` starve every other coroutine (heartbeats,
other callers, timeouts) until it ends."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from devicefit.engines.base import Engine, InputSpec
from devicefit.runtime import Model


class Spin(Engine):
    """A fast engine whose calls take ``cost_s`` of real time (busy: it holds the thread, like a short model)."""

    name = "spin"

    def __init__(self, cost_s: float) -> None:
        super().__init__(None, cache=False)
        self.cost_s = cost_s

    def _load(self) -> None:
        self.inputs = [InputSpec("x", "float", (1, 2))]
        self.output_names = ["y"]

    def _predict(self, feeds):
        end = time.perf_counter() + self.cost_s
        while time.perf_counter() < end:
            pass
        return {"y": feeds["x"]}


def test_a_caller_of_inline_requests_lets_other_tasks_run():
    feeds = {"x": np.zeros((1, 2), np.float32)}

    async def main() -> tuple[int, int, float]:
        with Model(Spin(50e-6), max_in_flight=1) as model:
            for _ in range(200):  # one lane: once measured, every request runs inline (a worker cannot gain)
                await model.predict_async(feeds)
            assert model._scheduler.policy.prefers_inline()
            ticks = 0
            stop = False

            async def heartbeat() -> None:
                nonlocal ticks
                while not stop:
                    ticks += 1
                    await asyncio.sleep(0)

            beat = asyncio.ensure_future(heartbeat())
            await asyncio.sleep(0)
            inline_before = model._scheduler.inline_runs
            start = time.perf_counter()
            for _ in range(400):  # ~20 ms of inline work
                await model.predict_async(feeds)
            elapsed = time.perf_counter() - start
            stop = True
            await beat
            return ticks, model._scheduler.inline_runs - inline_before, elapsed

    ticks, inline_runs, elapsed = asyncio.run(main())
    assert inline_runs == 400  # it did run inline: the loop's thread was busy the whole time
    # the loop got control about once per millisecond of inline work (the cap one call may block it for): ~20
    # times in these >= 20 ms (5 leaves room for a loaded machine; it was once in 400 requests)
    assert ticks >= 5, (ticks, elapsed)


def test_a_caller_cancelled_while_the_loop_takes_its_turn_is_counted_cancelled():
    feeds = {"x": np.zeros((1, 2), np.float32)}

    async def main():
        with Model(Spin(50e-6), max_in_flight=1) as model:
            for _ in range(200):
                await model.predict_async(feeds)
            before, inline_before = model.stats, model._scheduler.inline_runs
            model._last_yield = float("-inf")  # this request's inline call gives the loop its turn
            task = asyncio.ensure_future(model.predict_async(feeds))
            await asyncio.sleep(0)  # the task ran its call inline and is now yielding
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            else:
                raise AssertionError("the cancelled task returned a result")
            return before, model.stats, model._scheduler.inline_runs - inline_before

    before, after, inline_runs = asyncio.run(main())
    assert after.submitted == before.submitted + 1 and inline_runs == 1  # it ran, inline
    assert (after.completed, after.cancelled) == (before.completed, before.cancelled + 1)


def test_a_waiting_worker_result_gets_the_loop_right_after_an_inline_call():
    # its caller then hands the worker its next request before this caller's next runs inline (the awaiting
    # thread ran two requests per worker request otherwise, the worker idle ~0.45 ms of every 1.5 ms)
    feeds = {"x": np.zeros((1, 2), np.float32)}

    async def main() -> list[bool]:
        with Model(Spin(20e-6), max_in_flight=1, inline_below_s=10.0) as model:
            for _ in range(200):
                await model.predict_async(feeds)
            sched = model._scheduler
            assert sched.policy.prefers_inline()
            turns = []
            for waiting in (False, True, False, True):
                sched.results_waiting = lambda w=waiting: w  # type: ignore[method-assign]
                ran: list[bool] = []
                asyncio.get_running_loop().call_soon(ran.append, True)  # runs at the loop's next turn
                await model.predict_async(feeds)
                turns.append(bool(ran))
                await asyncio.sleep(0)
            return turns

    # inline_below_s=10 s: only a waiting result can make it give the loop a turn here
    assert asyncio.run(main()) == [False, True, False, True]
