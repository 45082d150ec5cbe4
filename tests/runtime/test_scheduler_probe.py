"""The scheduler's probe (a request that measures the engine alone: nothing starts beside it, and one that is
cancelled or dropped while queued holds nobody back) and its delivery of results (one loop wake-up for results that
finish together), reproduced with events and a fake clock."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from devicefit.runtime import Dropped
from devicefit.runtime.scheduler import InFlightScheduler


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            self.now += 1e-4
            return self.now


class GatedRun:
    """run(feeds): records which calls overlap; a call named in ``gates`` waits for its event."""

    def __init__(self, *gated: str) -> None:
        self.gates = {name: threading.Event() for name in gated}
        self.started = {name: threading.Event() for name in gated}
        self.lock = threading.Lock()
        self.active: set[str] = set()
        self.overlaps: dict[str, set[str]] = {}

    def __call__(self, feeds: str) -> str:
        with self.lock:
            self.overlaps[feeds] = set(self.active)
            for other in self.active:
                self.overlaps[other].add(feeds)
            self.active.add(feeds)
        if feeds in self.gates:
            self.started[feeds].set()
            assert self.gates[feeds].wait(10)
        with self.lock:
            self.active.discard(feeds)
        return feeds


async def _until(predicate, what: str) -> None:
    for _ in range(2000):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_first_request_is_a_probe_that_runs_alone():
    run = GatedRun("probe")
    sched = InFlightScheduler(run, max_in_flight=2, inline_below_s=1e-3, clock=Clock())

    async def main() -> list[str]:
        probe = asyncio.create_task(sched.submit("probe"))  # nothing measured yet: a probe
        assert await asyncio.to_thread(run.started["probe"].wait, 10)
        others = [asyncio.create_task(sched.submit(name)) for name in ("a", "b")]
        await _until(lambda: sched.queued == 2, "a and b to queue")
        assert sched.in_flight == 1  # a slot is free, yet nothing starts beside the probe
        run.gates["probe"].set()
        return await asyncio.gather(probe, *others)

    try:
        assert asyncio.run(main()) == ["probe", "a", "b"]
    finally:
        sched.close(timeout=10)
    assert run.overlaps["probe"] == set()
    assert sched.policy.call_s is not None  # it measured the engine
    s = sched.stats
    assert (s.submitted, s.completed) == (3, 3)


@pytest.mark.parametrize("how", ["cancel", "drop"])
def test_a_probe_that_never_runs_holds_nobody_back(how):
    run = GatedRun("busy")
    overflow = "drop_oldest" if how == "drop" else "wait"
    sched = InFlightScheduler(
        run, max_in_flight=2, overflow=overflow, max_queue=1, inline_below_s=1e-3, clock=Clock()
    )
    sched.policy.record_call(5e-3, solo=True)  # longer than inline_below_s: requests go to workers
    sched.policy.record_handoff(1e-4)

    async def main() -> None:
        busy = asyncio.create_task(sched.submit("busy"))
        assert await asyncio.to_thread(run.started["busy"].wait, 10)
        sched.policy._since_call = 10**6  # the call time is stale: the next request is a probe
        probe = asyncio.create_task(sched.submit("probe"))
        await _until(lambda: sched.queued == 1, "the probe to queue")
        assert sched.in_flight == 1  # it waits for the running call to end: a probe runs alone
        # "x" queues behind the probe; then the probe is cancelled, or (drop) the queue is full and the fresher
        # "after" replaces the oldest waiting request: the probe
        x = asyncio.create_task(sched.submit("x"))
        await _until(lambda: sched.queued == 2, "x to queue behind the probe")
        if how == "cancel":
            probe.cancel()
        else:
            assert await asyncio.wait_for(sched.submit("after"), 10) == "after"
        assert await asyncio.wait_for(x, 10) == "x"  # ran beside "busy": nobody waited for the probe
        with pytest.raises(asyncio.CancelledError if how == "cancel" else Dropped):
            await probe
        run.gates["busy"].set()
        assert await busy == "busy"

    try:
        asyncio.run(main())
    finally:
        sched.close(timeout=10)
    assert "probe" not in run.overlaps and "busy" in run.overlaps["x"]
    assert not sched.policy._probing  # the next stale measurement may probe again
    s = sched.stats
    assert s.settled == s.submitted == (3 if how == "cancel" else 4) and s.completed == s.submitted - 1


def test_results_that_finish_together_wake_the_loop_once():
    run = GatedRun("a", "b")
    sched = InFlightScheduler(run, max_in_flight=2)  # inline off: both go to workers

    async def main() -> tuple[list[str], int]:
        loop = asyncio.get_running_loop()
        posted = []
        post = loop.call_soon_threadsafe

        def counting(callback, *args):  # type: ignore[no-untyped-def]
            posted.append(callback)
            return post(callback, *args)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        tasks = [asyncio.create_task(sched.submit(name)) for name in ("a", "b")]
        for name in ("a", "b"):
            assert await asyncio.to_thread(run.started[name].wait, 10)
        run.gates["a"].set()
        run.gates["b"].set()
        # NOTE: blocks the loop on purpose: both results are posted before it can deliver the first
        for _ in range(10_000):
            if sched.stats.completed == 2:
                break
            time.sleep(0.001)
        results = await asyncio.gather(*tasks)
        return results, sum(1 for cb in posted if cb == sched._deliver)

    try:
        results, wake_ups = asyncio.run(main())
    finally:
        sched.close(timeout=10)
    assert results == ["a", "b"] and wake_ups == 1
