"""The lone inline request's short path (InFlightScheduler.begin_lone_locked) keeps the general route's semantics:
exact accounting, the in-flight bound, refreshes, and a worker or a gathering still taking what it should; a lone
caller's streak leaves the gathering's caller window as it is."""

from __future__ import annotations

import asyncio

import numpy as np

from devicefit.runtime import Model
from devicefit.runtime.gather import WINDOW, Gathering
from devicefit.runtime.inline_policy import BURST, INLINE, InlinePolicy
from tests.runtime.test_async_fast_path import ThreadRecorder, TickClock, _model, _one_by_one


def _inline_policy() -> InlinePolicy:
    policy = InlinePolicy(1e-3, lanes=2)
    policy.record_call(1e-5, solo=True)
    for _ in range(8):  # measured: a worker's call and handoff, far above the call alone
        policy.record_call(1e-5, solo=False, on_worker=True)
        policy.record_handoff(1e-4)
    assert policy.prefers_inline()
    return policy


def test_route_inline_now_counts_like_route_and_defers_refreshes_and_bursts_to_it():
    policy, twin = _inline_policy(), _inline_policy()
    clock = TickClock()
    for _ in range(policy.refresh_every):
        assert policy.route_inline_now()
        assert twin.route(clock) == INLINE
    assert (policy._since_call, policy._since_handoff) == (twin._since_call, twin._since_handoff)
    assert not policy.route_inline_now()  # a refresh is due: route() decides (and counts) it
    assert (policy._since_call, policy._since_handoff) == (twin._since_call, twin._since_handoff)
    policy._since_call = policy._since_handoff = 0
    policy._burst_left = 3
    assert not policy.route_inline_now()  # a burst under way: route() sends it on
    policy._burst_left, policy._inline = 0, False
    assert not policy.route_inline_now()  # the workers are measured faster


def test_lone_inline_requests_keep_exact_accounting_and_the_refresh_cycle():
    clock = TickClock(tick=100e-6)
    engine = ThreadRecorder(cost_s=1e-6, clock=clock)
    with _model(engine, clock, max_in_flight=2) as model:
        learn = _one_by_one(model, 1 + BURST)
        sched = model._scheduler
        lone_before = sched.inline_runs
        n = 3 * sched.policy.refresh_every  # long enough for refreshes (a solo call, a burst) to fall due
        results = _one_by_one(model, n, start=len(learn))
        s = model.stats
        policy = sched.policy
    assert [float(r["y"][0, 0]) for r in results] == [2.0 * i for i in range(len(learn), len(learn) + n)]
    assert s.submitted == s.completed == len(learn) + n and s.peak_in_flight <= 2
    assert sched.inline_runs - lone_before >= n - 2 * BURST  # nearly all on the awaiting thread
    assert sched._running == 0 and sched._inline_running == 0
    # the refresh cycle still ran: the call time was refreshed within refresh_every requests
    assert policy._since_call <= policy.refresh_every


def test_a_lone_path_request_never_runs_beside_a_queued_or_running_worker_request():
    clock = TickClock(tick=100e-6)
    engine = ThreadRecorder(cost_s=1e-6, clock=clock)
    with _model(engine, clock, max_in_flight=1) as model:
        _one_by_one(model, 1 + BURST)
        sched = model._scheduler
        with model._lock:
            sched._running = 1  # a worker's call holds the only slot
            assert sched.begin_lone_locked() is None
            sched._running = 0
            assert sched.begin_lone_locked() is not None
            sched.end_inline_locked((sched._starts, True, clock(), False), failed=False)
            sched._stats.submitted += 1  # (the handle counts what begin admits)
        assert model.stats.submitted == model.stats.completed


def test_a_lone_callers_streak_leaves_the_window_and_a_second_caller_is_counted_at_once():
    g = Gathering()

    async def main() -> tuple[list[int], dict, list[int]]:
        one = [g.wanted(lambda: 16, 40e-6) for _ in range(3 * WINDOW)]  # one task: never gathers
        counts = dict(g._counts)

        async def other() -> int:
            return g.wanted(lambda: 16, 40e-6)

        second = await asyncio.gather(*[asyncio.create_task(other()) for _ in range(3)])
        return one, counts, list(second)

    one, counts, second = asyncio.run(main())
    assert not any(one)
    assert list(counts.values()) == [WINDOW]  # the window holds the lone caller's last WINDOW requests
    assert all(w == 16 for w in second)  # new callers: a size class never measured, so a trial gathers


def test_two_closed_loop_callers_through_the_handle_still_settle_every_request_once():
    clock = TickClock(tick=100e-6)
    engine = ThreadRecorder(cost_s=1e-6, clock=clock)
    with _model(engine, clock, max_in_flight=2) as model:
        _one_by_one(model, 1 + BURST)

        async def main() -> list[float]:
            async def caller(k: int) -> list[float]:
                out = []
                for i in range(200):
                    r = await model.predict_async({"x": np.full((1, 4), k * 1000 + i, np.float32)})
                    out.append(float(r["y"][0, 0]))
                return out

            a, b = await asyncio.gather(caller(1), caller(2))
            return a + b

        values = asyncio.run(main())
        s = model.stats
    assert values == [2.0 * (1000 + i) for i in range(200)] + [2.0 * (2000 + i) for i in range(200)]
    assert s.submitted == s.completed == 1 + BURST + 400 and s.peak_in_flight <= 2


def test_a_model_handle_built_from_a_plain_engine_takes_the_lone_path():
    clock = TickClock(tick=100e-6)
    engine = ThreadRecorder(cost_s=1e-6, clock=clock)
    model = Model(engine, max_in_flight=2)
    model._clock = clock
    with model:
        _one_by_one(model, 1 + BURST)
        sched = model._scheduler
        calls = []
        original = sched.begin_lone_locked

        def spy():  # type: ignore[no-untyped-def]
            ticket = original()
            calls.append(ticket is not None)
            return ticket

        sched.begin_lone_locked = spy  # type: ignore[method-assign]
        _one_by_one(model, 20)
    assert calls and all(calls[-10:])
