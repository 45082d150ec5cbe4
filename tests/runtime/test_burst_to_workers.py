"""A burst of requests made at once goes to the workers, not one by one on the awaiting thread (issue 13).

``asyncio.gather(*[model.predict_async(x) for x in batch])`` is how issue 13 measured async throughput (60
requests, max_in_flight=2). Each request becomes ready only when the previous one returns control to the loop, so
when the policy let a request run on the awaiting thread (inline, or the caller lane) the whole burst ran there one
by one: 1.0x sync, where two workers taking the queued requests back to back reach the plain-thread speed-up.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from devicefit.runtime.inline_policy import MIN_SAMPLES, InlinePolicy
from devicefit.runtime.scheduler import InFlightScheduler

CALL_S = 2e-3


def _lane_state() -> InlinePolicy:
    """A lone request goes to a worker with the caller lane (the awaiting thread's calls beside a worker's stay
    fast while the worker's wait for the GIL); a backlog goes to the workers."""
    policy = _policy(worker_call_s=1.55 * CALL_S, handoff_s=0.15 * CALL_S, lane_call_s=CALL_S)
    assert not policy.prefers_inline() and policy.lane_pays() and policy.backlog_prefers_workers()
    return policy


def _inline_state() -> InlinePolicy:
    """A lone request runs on the awaiting thread, yet two workers take a backlog faster.

    Since the worker route weighs the workers alone too (``2 c / (w + h)``, the backlog's own rate), the measured
    formulas meet this state only at their boundary; it is set here, as a policy biased towards inline might:
    the scheduler must still send a burst to the workers in order, counting each request once.
    """
    policy = _policy(worker_call_s=1.05 * CALL_S, handoff_s=0.6 * CALL_S)
    assert policy.backlog_prefers_workers()
    policy._inline = True
    return policy


def _policy(*, worker_call_s: float, handoff_s: float, lane_call_s: float | None = None) -> InlinePolicy:
    policy = InlinePolicy(10e-3, lanes=2)
    policy.record_call(CALL_S, solo=True)
    policy.record_call(worker_call_s, solo=False, on_worker=True)
    if lane_call_s is not None:
        policy.record_call(lane_call_s, solo=False, lane=True)
    for _ in range(MIN_SAMPLES):
        policy.record_handoff(handoff_s)
    # frozen: these tests are about where the scheduler sends requests for a given measured state; the fake
    # engine's own calls (a sleep, plus timer slack) would otherwise move a state chosen near a boundary
    policy.record_call = lambda *args, **kwargs: None  # type: ignore[method-assign]
    policy.record_handoff = lambda *args, **kwargs: None  # type: ignore[method-assign]
    return policy


def _scheduler(policy: InlinePolicy, overflow: str = "wait", max_queue: int | None = None):  # type: ignore[no-untyped-def]
    ran: list[tuple[int, str]] = []
    lock = threading.Lock()

    def run(i: int) -> int:
        with lock:
            ran.append((i, threading.current_thread().name))
        time.sleep(CALL_S)  # releases the GIL, as the compiled graph does: two workers run two at once
        return i * 10

    sched = InFlightScheduler(run, max_in_flight=2, overflow=overflow, max_queue=max_queue, policy=policy)
    # the order requests left the queue (under the scheduler's lock; two workers may then record their runs in
    # either order)
    sched._started_feeds = []  # type: ignore[attr-defined]
    start = sched._start

    def recorded(req):  # type: ignore[no-untyped-def]
        sched._started_feeds.append(req.feeds)  # type: ignore[attr-defined]
        start(req)

    sched._start = recorded  # type: ignore[method-assign]
    return sched, ran


def _fifo(sched: InFlightScheduler) -> bool:
    started = [i for i in sched._started_feeds]  # type: ignore[attr-defined]
    return started == sorted(started)


def _burst(sched: InFlightScheduler, n: int) -> list[int]:
    async def main() -> list[int]:
        return await asyncio.gather(*[sched.submit(i) for i in range(n)])

    try:
        return asyncio.run(main())
    finally:
        sched.close()


@pytest.mark.parametrize("state", [_lane_state, _inline_state], ids=["caller-lane", "inline"])
def test_a_gathered_burst_runs_on_the_workers_whatever_a_lone_request_would_do(state):
    sched, ran = _scheduler(state())
    assert _burst(sched, 12) == [i * 10 for i in range(12)]
    here = threading.current_thread().name
    assert sum(name != here for _, name in ran) >= 10  # old code: half (caller lane) or none (inline) there
    assert _fifo(sched)


def test_a_gathered_burst_runs_on_the_workers_when_they_take_a_backlog_faster():
    sched, ran = _scheduler(_lane_state())
    assert _burst(sched, 12) == [i * 10 for i in range(12)]
    here = threading.current_thread().name
    on_workers = [i for i, name in ran if name != here]
    assert len(on_workers) >= 10  # the old code ran every other one here, on the caller lane
    assert sched.stats.peak_in_flight == 2
    # first come, first served: the workers started them in the order they were made
    assert _fifo(sched)
    stats = sched.stats
    assert (stats.submitted, stats.completed) == (12, 12)
    assert sched._arriving == 0


def test_a_lone_request_still_runs_on_the_awaiting_thread():
    sched, ran = _scheduler(_inline_state())

    async def one_after_another() -> list[int]:
        return [await sched.submit(i) for i in range(3)]

    try:
        assert asyncio.run(one_after_another()) == [0, 10, 20]
    finally:
        sched.close()
    assert {name for _, name in ran} == {threading.current_thread().name}


@pytest.mark.parametrize(
    ("worker_call", "handoff"),
    [(8.0, 0.6), (1.05, 2.5)],
    ids=["worker-calls-wait-for-the-gil", "handoff-dwarfs-the-call"],
)
def test_a_backlog_stays_here_when_workers_would_be_slower(worker_call, handoff):
    # a tiny call: its worker calls wait for the GIL, or each result's trip back to the loop costs more than the
    # call (a burst of 400 tiny requests sent to the workers ran at 0.37x sync on onnxruntime)
    policy = _policy(worker_call_s=worker_call * CALL_S, handoff_s=handoff * CALL_S)
    assert policy.prefers_inline() and not policy.backlog_prefers_workers()
    sched, ran = _scheduler(policy)
    assert not sched.wants_arrivals()
    assert _burst(sched, 6) == [i * 10 for i in range(6)]
    assert {name for _, name in ran} == {threading.current_thread().name}


@pytest.mark.parametrize("overflow", ["drop_oldest", "reject"])
def test_dropping_policies_do_not_reorder_requests_by_yielding(overflow):
    sched, _ = _scheduler(_inline_state(), overflow=overflow, max_queue=4)
    assert not sched.wants_arrivals()
    sched.close()


def test_a_request_cancelled_while_it_arrives_is_counted_once_and_never_runs():
    sched, ran = _scheduler(_inline_state())

    async def main() -> None:
        task = asyncio.ensure_future(sched.submit(7))
        await asyncio.sleep(0)  # the request is now inside arrive(), yielding
        assert sched._arriving == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(main())
    finally:
        sched.close()
    assert ran == []
    stats = sched.stats
    assert (stats.submitted, stats.cancelled, stats.settled) == (1, 1, 1)
    assert sched._arriving == 0


def test_a_gathered_burst_through_the_model_handle_goes_to_the_workers(small_pkg, small_feeds):
    import devicefit

    model = devicefit.load(small_pkg, engine="interp", max_in_flight=2, cache=False)
    model.predict(small_feeds)
    sched = model._sched_locked()
    # the small CNN's measurements: a backlog goes to the workers, a lone request takes the caller lane
    sched.policy = _lane_state()
    runs_before = sched.inline_runs

    async def main() -> list[dict]:
        return await asyncio.gather(*[model.predict_async(small_feeds) for _ in range(10)])

    try:
        results = asyncio.run(main())
    finally:
        model.unload()
    assert len(results) == 10
    assert sched.inline_runs - runs_before <= 2  # before: all 10 ran on the awaiting thread
    assert model.stats.completed >= 10


def _closed_loop(sched: InFlightScheduler, callers: int, each: int = 5) -> None:
    """``callers`` coroutines, each awaiting its request before making the next (caller k sends 100k + i)."""

    async def caller(base: int) -> None:
        for i in range(each):
            await sched.submit(base + i)

    async def main() -> None:
        await asyncio.gather(*(caller(100 * k) for k in range(callers)))

    try:
        asyncio.run(main())
    finally:
        sched.close()


def test_two_closed_loop_callers_are_no_backlog_and_keep_the_measured_route():
    # two callers, each awaiting its request before the next, with two slots: never more requests than slots,
    # so each would still pay a handoff on a worker; the policy's inline route stands
    sched, ran = _scheduler(_inline_state())
    _closed_loop(sched, callers=2)
    assert len(ran) == 10
    assert {name for _, name in ran} == {threading.current_thread().name}


def test_three_closed_loop_callers_on_two_slots_are_a_backlog():
    sched, ran = _scheduler(_inline_state())
    _closed_loop(sched, callers=3)
    here = threading.current_thread().name
    assert len(ran) == 15
    # the three first requests arrive together, one more than the slots: they go to the workers (the old code
    # ran each on the awaiting thread); later ones meet whatever the timing leaves free
    first = {i: name for i, name in ran if i in (0, 100, 200)}
    assert sum(name != here for name in first.values()) >= 2
