"""Worker threads of the async scheduler: started only when needed, and a new thread's first request is not a
sample of the worker call time or the handoff (its start and warm-up cost 3-4 ms and 5.6 ms on a 0.65 ms call:
counted, they sent the small CNN inline at 1.0x sync where the workers give 1.4x)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from devicefit.runtime.inline_policy import InlinePolicy
from devicefit.runtime.scheduler import InFlightScheduler


def _worker_policy() -> InlinePolicy:
    """Measured already, preferring workers: every request below goes to a worker (no probe, no burst)."""
    policy = InlinePolicy(None, lanes=2, call_s=5e-4, worker_call_s=5.5e-4, handoff_s=5e-5)
    return policy


def test_requests_one_at_a_time_use_one_worker_thread():
    sched = InFlightScheduler(lambda feeds: feeds, max_in_flight=2, policy=_worker_policy())

    async def main() -> list[int]:
        return [await sched.submit(i) for i in range(6)]

    try:
        assert asyncio.run(main()) == list(range(6))
        assert len(sched.threads()) == 1
    finally:
        sched.close()


def test_concurrent_requests_still_start_every_worker():
    gate = threading.Barrier(3, timeout=10)  # three calls at once, or the barrier breaks

    def run(feeds: int) -> int:
        gate.wait()
        return feeds

    sched = InFlightScheduler(run, max_in_flight=3, policy=_worker_policy())

    async def main() -> list[int]:
        return list(await asyncio.gather(*(sched.submit(i) for i in range(3))))

    try:
        assert asyncio.run(main()) == [0, 1, 2]
        assert len(sched.threads()) == 3 and sched.stats.peak_in_flight == 3
    finally:
        sched.close()


def test_a_new_threads_first_request_is_not_a_sample_of_the_worker_or_the_handoff():
    cold = threading.local()

    def run(feeds: int) -> int:
        if not getattr(cold, "warm", False):  # a new thread's first call: slow (here, in fake time)
            cold.warm = True
            with lock:
                now[0] += 0.005
        with lock:
            now[0] += 0.0005
        return feeds

    now, lock = [0.0], threading.Lock()

    def clock() -> float:
        with lock:
            return now[0]

    policy = _worker_policy()
    policy.worker_call_s = policy.handoff_s = None
    sched = InFlightScheduler(run, max_in_flight=2, policy=policy, clock=clock)

    async def main() -> None:
        for i in range(3):
            await sched.submit(i)

    try:
        asyncio.run(main())
    finally:
        sched.close()
    assert len(sched.threads()) == 1
    # three requests on one thread: the first was its warm-up, the other two are the samples
    assert len(policy._worker_calls) == 2 and policy.worker_call_s == pytest.approx(0.0005), policy
    assert len(policy._handoffs) == 2 and max(policy._handoffs) < 0.005, policy
