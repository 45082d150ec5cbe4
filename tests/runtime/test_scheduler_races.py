"""InFlightScheduler edge cases, reproduced deterministically with events: a request woken for a freed slot
just before close(), and a run() that raises a BaseException."""

from __future__ import annotations

import asyncio
import threading

import pytest

from devicefit.runtime import Dropped
from devicefit.runtime.scheduler import InFlightScheduler


class _WakeSignal(InFlightScheduler):
    """Signals (thread-safely) each time a waiter is woken for a freed slot."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.woken = threading.Event()

    def _wake_admission(self) -> None:
        super()._wake_admission()
        self.woken.set()


def test_waiter_woken_just_before_close_is_dropped_not_run():
    calls: list[str] = []
    gate = threading.Event()
    started = threading.Event()

    def run(feeds: str) -> str:
        calls.append(feeds)
        started.set()
        assert gate.wait(10)
        return feeds

    sched = _WakeSignal(run, max_in_flight=1, overflow="wait", max_queue=0)

    async def main() -> None:
        first = asyncio.create_task(sched.submit("first"))
        assert await asyncio.to_thread(started.wait, 10)
        second = asyncio.create_task(sched.submit("second"))
        for _ in range(5):  # let `second` find the scheduler full and park on its admission future
            await asyncio.sleep(0)
        assert sched.stats.submitted == 2 and calls == ["first"]
        gate.set()
        # Block the loop thread: `second` has been woken for the freed slot but cannot resume until we yield.
        assert sched.woken.wait(10)
        sched.close(timeout=10)
        assert await asyncio.wait_for(first, 10) == "first"
        with pytest.raises(Dropped):
            await asyncio.wait_for(second, 10)

    asyncio.run(main())
    assert calls == ["first"]  # the second request never ran on the closed scheduler
    assert not [t for t in sched.threads() if t.is_alive()]
    s = sched.stats
    assert (s.submitted, s.completed, s.dropped) == (2, 1, 1) and s.settled == s.submitted


class _Abort(BaseException):
    """Not an Exception: what a run that escapes `except Exception` looks like."""


def test_base_exception_in_run_resolves_future_and_frees_slot():
    def run(feeds: str) -> str:
        if feeds == "boom":
            raise _Abort("escaped")
        return feeds

    sched = InFlightScheduler(run, max_in_flight=1, overflow="wait")

    async def main() -> None:
        with pytest.raises(_Abort, match="escaped"):
            await asyncio.wait_for(sched.submit("boom"), 10)
        assert sched.in_flight == 0  # the slot came back
        assert await asyncio.wait_for(sched.submit("after"), 10) == "after"  # and a worker still serves

    try:
        asyncio.run(main())
    finally:
        sched.close(timeout=10)
    s = sched.stats
    assert (s.submitted, s.failed, s.completed) == (2, 1, 1) and s.settled == s.submitted
    assert not [t for t in sched.threads() if t.is_alive()]
