"""The inline policy alone: routing decisions from given measurements, with a fake clock (no timing involved)."""

from __future__ import annotations

import itertools

import pytest

from devicefit.runtime.inline_policy import (
    BURST,
    INLINE,
    MAX_BACKOFF,
    MIN_SAMPLES,
    PROBE,
    RECHECK,
    WORKER,
    InlinePolicy,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _measured(call_s: float, handoff_s: float, max_block_s: float = 1e-3) -> InlinePolicy:
    policy = InlinePolicy(max_block_s)
    policy.record_call(call_s, solo=True)
    for _ in range(MIN_SAMPLES):
        policy.record_handoff(handoff_s)
    return policy


def _close_call(handoff_s: float = 100e-6) -> InlinePolicy:
    """Inline, but not plainly (the workers at their best, a handoff of 20 us, would win): a route that its
    refresh bursts may flip."""
    policy = _measured(120e-6, handoff_s=handoff_s)
    policy.record_handoff(20e-6)  # one fast wake-up: the floor, not the median
    assert policy.prefers_inline() and not policy.plainly_inline()
    return policy


def test_nothing_known_probes_once_then_bursts_to_workers_then_decides():
    clock = Clock()
    policy = InlinePolicy(1e-3)
    assert policy.route(clock) == PROBE
    # while the probe is out nothing is known: workers (the behaviour with inline off), no second probe
    assert [policy.route(clock) for _ in range(3)] == [WORKER] * 3
    policy.probe_started(clock())
    policy.record_call(30e-6, solo=True)
    policy.probe_ended()
    # the call time is known, the handoff not (a probe's is not counted): a burst measures it
    assert [policy.route(clock) for _ in range(BURST)] == [WORKER] * BURST
    for _ in range(BURST):
        policy.record_handoff(200e-6)
    assert policy.route(clock) == INLINE


def test_route_follows_the_measured_worker_cycle_and_the_cap():
    # the same 300 us call: inline when a handoff costs about as much, on workers when it is cheap
    assert _measured(300e-6, handoff_s=300e-6).prefers_inline()
    cheap_handoff = _measured(300e-6, handoff_s=100e-6)
    assert not cheap_handoff.prefers_inline()
    # ... unless calls side by side on the workers are slow (the GIL, memory bandwidth): measured, not assumed
    for _ in range(5):
        cheap_handoff.record_call(700e-6, solo=False, on_worker=True)
    assert cheap_handoff.worker_cycle_s() == pytest.approx(800e-6) and cheap_handoff.prefers_inline()
    # never longer than max_block_s on the event loop, however slow the handoff
    assert not _measured(2e-3, handoff_s=10e-3, max_block_s=1e-3).prefers_inline()
    # one lane (max_in_flight=1): a worker cannot make anything faster
    one_lane = _measured(300e-6, handoff_s=100e-6)
    one_lane.lanes = 1
    assert one_lane.prefers_inline()


def test_only_solo_calls_measure_the_engine():
    policy = _measured(30e-6, handoff_s=100e-6)
    for _ in range(50):  # overlapped calls waited for the GIL / a CPU: they say nothing about the engine
        policy.record_call(900e-6, solo=False)
    assert policy.call_s == 30e-6 and policy.prefers_inline()


def test_call_time_is_the_minimum_of_a_window_so_a_slower_model_is_noticed():
    policy = _measured(30e-6, handoff_s=100e-6)
    policy.record_call(80e-6, solo=True)  # one descheduled solo call does not move the estimate
    assert policy.call_s == 30e-6
    for _ in range(8):  # the model became slower (larger inputs): the window forgets the old minimum
        policy.record_call(400e-6, solo=True)
    assert policy.call_s == 400e-6 and not policy.prefers_inline()


def test_handoff_is_a_median_robust_to_outliers():
    policy = _measured(120e-6, handoff_s=100e-6)
    for seconds in (100e-6, 100e-6, 5e-3):
        policy.record_handoff(seconds)
    assert policy.handoff_s == 100e-6 and policy.worker_cycle_s() == pytest.approx(220e-6)


def test_inline_mode_refreshes_the_handoff_with_a_burst_after_enough_requests_and_time():
    clock = Clock()
    policy = _measured(30e-6, handoff_s=100e-6)
    policy.refresh_every, policy.refresh_interval_s = 10, 1.0
    routes = []
    for _ in range(30):  # inline calls are solo: the call time stays fresh, the handoff does not
        routes.append(policy.route(clock))
        policy.record_call(30e-6, solo=True)
    assert routes[:10] == [INLINE] * 10
    assert routes[10 : 10 + BURST] == [WORKER] * BURST  # the first refresh is due at once
    for _ in range(BURST):
        policy.record_handoff(10e-6)  # the machine got quieter: a worker now wins
    assert policy.route(clock) == WORKER and not policy.prefers_inline()


def test_refresh_waits_for_the_interval():
    clock = Clock()
    policy = _close_call()
    policy.refresh_every, policy.refresh_interval_s = 5, 1.0
    policy._last_burst = 0.0
    routes = []
    for _ in range(20):  # 20 requests, no time passed
        routes.append(policy.route(clock))
        policy.record_call(120e-6, solo=True)
    assert routes == [INLINE] * 20
    clock.now = (
        1.0  # due now: the policy notices within RECHECK requests (it does not read the clock each time)
    )
    routes = []
    for _ in range(RECHECK + 1):
        routes.append(policy.route(clock))
        policy.record_call(120e-6, solo=True)
    assert WORKER in routes


def test_worker_mode_probes_the_call_time_alone():
    clock = Clock()
    policy = _measured(900e-6, handoff_s=100e-6)
    policy.refresh_every = 10
    routes = []
    for _ in range(12):  # worker calls overlap: no solo sample, the handoff stays fresh
        routes.append(policy.route(clock))
        policy.record_call(950e-6, solo=False)
        policy.record_handoff(100e-6)
    assert routes[:10] == [WORKER] * 10 and routes[10] == PROBE
    assert routes[11] == WORKER  # one probe at a time
    policy.probe_started(clock())
    policy.record_call(30e-6, solo=True)  # the model is cheap after all (it was contended)
    policy.probe_ended()
    assert policy.route(clock) == INLINE


def test_off_routes_everything_to_workers():
    policy = InlinePolicy(None)
    policy.record_call(1e-6, solo=True)
    policy.record_handoff(1.0)
    assert {policy.route(Clock()) for _ in range(500)} == {WORKER}


def test_one_slow_handoff_sample_does_not_send_everything_inline():
    # a single sample decided the route before: one slow wake-up kept a 0.65 ms CNN inline (1.0x sync)
    policy = InlinePolicy(1e-3)
    policy.record_call(650e-6, solo=True)
    policy.record_handoff(3e-3)
    assert not policy.prefers_inline()
    for _ in range(MIN_SAMPLES - 1):
        policy.record_handoff(3e-3)
    assert policy.prefers_inline()  # measured again and again: the handoff really is that slow


def test_a_refresh_burst_decides_on_fresh_samples_only():
    # A busy spell left the worker-call window full of contended calls (inline wins); the refresh burst measured
    # the quiet machine again, but half its requests ran on the caller lane (no worker sample): the stale half of
    # the 15-sample window kept the median, and the small CNN stayed inline at 1.0x where workers gave 1.4x
    clock = Clock()
    policy = _measured(650e-6, handoff_s=150e-6)
    for _ in range(15):
        policy.record_call(1150e-6, solo=False, on_worker=True)
    assert policy.prefers_inline()
    policy.refresh_every, policy.refresh_interval_s = 10, 0.0
    routes = []
    for _ in range(12):  # inline calls are solo: the call time stays fresh, the worker figures do not
        routes.append(policy.route(clock))
        policy.record_call(650e-6, solo=True)
    assert WORKER in routes  # the burst
    for _ in range(4):
        policy.record_call(740e-6, solo=False, on_worker=True)
        policy.record_handoff(120e-6)
    assert policy.worker_call_s == pytest.approx(740e-6) and not policy.prefers_inline()


def test_the_route_weighs_the_caller_lane_by_its_measured_call_time():
    # Worker calls read slow (they wait for the GIL the awaiting thread holds to finish their Python) while the
    # awaiting thread's own calls beside them barely slow down: the lane still adds a worker's throughput.
    # The all-workers formula (2 c <= 1.15 (w + h)) sent this inline (1.0x) where the lane measured 1.3x-1.5x.
    policy = _measured(650e-6, handoff_s=100e-6)
    for _ in range(5):
        policy.record_call(1100e-6, solo=False, on_worker=True)
        policy.record_call(680e-6, solo=False, lane=True)
    assert 2 * policy.call_s <= 1.15 * policy.worker_cycle_s()  # what the all-workers formula read as inline
    assert policy.lane_call_s == pytest.approx(680e-6) and not policy.prefers_inline()
    # ... and when calls beside a worker's are as slow on the awaiting thread (a memory- or GIL-bound model)
    for _ in range(15):
        policy.record_call(1000e-6, solo=False, lane=True)
    assert policy.prefers_inline()


def test_the_worker_route_drops_the_caller_lane_where_the_workers_alone_are_faster():
    # Measured on a 2-vCPU VM whose calls slow down ~1.3x beside each other (a 0.92 ms CNN): with the lane's
    # lockstep the worker route predicts 1.05x, so it ran inline (0.96x sync) while the bare await-a-thread
    # control read 1.43x; the workers alone predict 1.25x.
    policy = _measured(924e-6, handoff_s=223e-6, max_block_s=5e-3)
    for _ in range(5):
        policy.record_call(1261e-6, solo=False, on_worker=True)
        policy.record_call(1192e-6, solo=False, lane=True)
    with_lane, alone = policy._worker_rates()
    assert 924e-6 * with_lane == pytest.approx(1.054, abs=0.01) and 924e-6 * alone == pytest.approx(
        1.245, abs=0.01
    )
    assert not policy.prefers_inline()  # the lane alone read as inline (1.05x <= 1.15)
    assert not policy.lane_pays() and not policy.uses_lane
    # where the awaiting thread's calls beside a worker stay fast, the lane still wins (and is used)
    for _ in range(15):
        policy.record_call(700e-6, solo=False, lane=True)
    assert policy.lane_pays() and policy.uses_lane and not policy.prefers_inline()


def test_a_refresh_burst_uses_the_lane_so_its_call_time_stays_measured():
    clock = Clock()
    policy = _measured(924e-6, handoff_s=223e-6, max_block_s=5e-3)
    for _ in range(5):
        policy.record_call(1261e-6, solo=False, on_worker=True)
        policy.record_call(1192e-6, solo=False, lane=True)
    assert not policy.uses_lane
    policy._since_handoff = policy.refresh_every + 1  # a handoff refresh is due
    policy._since_call = 0
    assert policy.route(clock) == WORKER and policy._burst_left == BURST - 1
    assert policy.uses_lane


def _burst_times(policy: InlinePolicy, clock: Clock, handoff_s: float, until: float) -> list[float]:
    """Run inline-mode requests 1 ms apart until ``until``; answer each burst with ``handoff_s`` samples."""
    starts = []
    while clock.now < until:
        if policy.route(clock) == WORKER and policy._burst_left == BURST - 1:
            starts.append(round(clock.now, 3))
            for _ in range(BURST - 1):
                policy.route(clock)
            for _ in range(MIN_SAMPLES):
                policy.record_handoff(handoff_s)
        policy.record_call(policy.call_s or 30e-6, solo=True)
        clock.now += 0.001
    return starts


def test_a_burst_that_confirms_the_route_doubles_the_wait_and_a_flip_resets_it():
    # every burst sends BURST requests the slow way: a steady route is refreshed less and less often
    clock = Clock()
    policy = _close_call()
    policy.refresh_every, policy.refresh_interval_s = 1, 1.0
    policy._last_burst = 0.0
    starts = _burst_times(policy, clock, 100e-6, until=130.0)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # (the clock is read every RECHECK requests: a gap may run up to RECHECK ms late)
    expected = [2.0, 4.0, 8.0, 16.0, 32.0, 32.0, 32.0]
    assert len(gaps) == len(expected)
    assert all(want <= got <= want + RECHECK * 1e-3 + 1e-9 for got, want in zip(gaps, expected)), gaps
    assert policy.prefers_inline()
    # the machine got quieter: the next burst flips the route to the workers and the wait starts again at 1 s
    flipped = _burst_times(policy, clock, 5e-6, until=clock.now + 35.0)
    assert not policy.prefers_inline()
    assert len(flipped) >= 2 and 1.0 <= flipped[1] - flipped[0] <= 1.0 + RECHECK * 1e-3 + 1e-9


def test_a_burst_short_of_samples_goes_on_to_workers_then_decides_on_what_it_measured():
    """A burst whose requests yield few handoff samples (results delivered together, requests that waited for a
    busy worker: none is a sample) left the window under MIN_SAMPLES, and with it the route on the workers until
    the next refresh, 500 requests later: a cheap model measured at 0.1 ms a handoff ran its 80 closed-loop
    requests on the workers (tests/runtime/test_async_fast_path.py, failing under xdist)."""
    clock = Clock()
    policy = InlinePolicy(1e-3)
    policy.record_call(20e-6, solo=True)  # as after the probe: cheap alone
    routes = [policy.route(clock) for _ in range(BURST)]
    assert routes == [WORKER] * BURST
    policy.record_handoff(100e-6)  # the burst gave two samples only
    policy.record_handoff(400e-6)
    extra = list(itertools.takewhile(lambda r: r == WORKER, (policy.route(clock) for _ in range(200))))
    # more requests go to the workers to measure (bounded), then the route decides on the samples it has
    assert 0 < len(extra) <= 4 * BURST
    assert policy.prefers_inline() and policy.route(clock) == INLINE


def test_a_burst_extended_for_samples_stops_as_soon_as_it_has_enough():
    clock = Clock()
    policy = InlinePolicy(1e-3)
    policy.record_call(20e-6, solo=True)
    assert [policy.route(clock) for _ in range(BURST)] == [WORKER] * BURST
    assert policy.route(clock) == WORKER  # still short of samples: one more to the workers
    for _ in range(MIN_SAMPLES):
        policy.record_handoff(200e-6)
    assert policy.route(clock) == INLINE


def test_a_call_the_workers_could_not_beat_at_their_best_stays_inline_through_a_refresh_burst():
    """onnxruntime's 11 us MLP: a refresh burst sent its 8 requests to the workers, and the route waited there for
    MIN_SAMPLES fresh handoffs; under a 400-request asyncio.gather the requests queued behind those held every
    slot, and the whole burst ran on the workers (0.32x sync against 0.6x-0.8x in the other rounds)."""
    clock = Clock()
    policy = _measured(11e-6, handoff_s=80e-6)
    assert policy.plainly_inline() and policy.handoff_floor_s == 80e-6
    policy.refresh_every, policy.refresh_interval_s = 10, 0.0
    for _ in range(10):
        assert policy.route(clock) == INLINE
        policy.record_call(11e-6, solo=True)
    assert [policy.route(clock) for _ in range(BURST)] == [WORKER] * BURST  # a refresh burst samples
    policy.record_handoff(90e-6)  # its first sample, far from MIN_SAMPLES fresh ones
    assert policy.route(clock) == INLINE  # no extension, no flip to the workers meanwhile
    assert policy.prefers_inline()


def test_a_plainly_inline_route_refreshes_the_handoff_at_the_longest_back_off_only():
    clock = Clock()
    policy = _measured(11e-6, handoff_s=80e-6)
    policy.refresh_every, policy.refresh_interval_s = 1, 1.0
    policy._last_burst = 0.0
    starts = _burst_times(policy, clock, 80e-6, until=70.0)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps and all(MAX_BACKOFF <= g <= MAX_BACKOFF + RECHECK * 1e-3 + 1e-9 for g in gaps), gaps
    # the machine got quieter than ever measured (a 2 us handoff): the workers may win now, the route is
    # decided on the samples again, and the wait starts again at refresh_interval_s
    starts = _burst_times(policy, clock, 2e-6, until=clock.now + 40.0)
    assert not policy.plainly_inline() and not policy.prefers_inline()
    assert len(starts) >= 2 and 1.0 <= starts[1] - starts[0] <= 2.0 + RECHECK * 1e-3 + 1e-9


def test_a_plainly_inline_route_refreshes_its_call_time_with_a_solo_call_not_a_probe():
    """A probe runs on a worker and nothing starts beside it: under a burst, every request queued behind it went
    to the workers. A plainly inline route asks for one request run alone on the awaiting thread instead."""
    clock = Clock()
    policy = _measured(11e-6, handoff_s=80e-6)
    policy.refresh_every, policy._last_burst = 10, 0.0  # (no handoff refresh due in this test)
    routes = []
    for _ in range(30):  # gathered batches: no solo call sample, the call time goes stale
        routes.append(policy.route(clock))
    assert set(routes) == {INLINE} and policy.solo_due
    policy.record_call(12e-6, solo=True)  # the request run alone
    assert not policy.solo_due and policy.route(clock) == INLINE
    # not plainly inline (a slow call): the probe as before
    slow = _measured(900e-6, handoff_s=100e-6)
    slow.refresh_every = 10
    routes = []
    for _ in range(12):
        routes.append(slow.route(clock))
        slow.record_handoff(100e-6)
    assert PROBE in routes and not slow.solo_due


def test_one_slow_handoff_is_no_floor():
    policy = InlinePolicy(1e-3)
    policy.record_call(650e-6, solo=True)
    for _ in range(MIN_SAMPLES - 1):
        policy.record_handoff(3e-3)
        assert not policy.plainly_inline()
    policy.record_handoff(3e-3)
    assert policy.plainly_inline()


def test_a_due_refresh_waits_while_requests_are_gathered_to_run_together():
    """A refresh's requests sent to the workers under a burst wait for busy workers (no samples) and, holding the
    slots, sent the rest of a 400-request asyncio.gather to the workers after them (0.45x sync that round)."""
    for policy in (_close_call(), _measured(900e-6, handoff_s=100e-6)):  # a handoff refresh / a probe due
        clock = Clock()
        policy.refresh_every = 10
        policy._since_call = policy._since_handoff = 11
        usual = INLINE if policy.prefers_inline() else WORKER
        assert [policy.route(clock, crowded=True) for _ in range(5)] == [usual] * 5
        assert policy._burst_left == 0 and not policy._probing
        assert policy.route(clock) in (WORKER, PROBE)  # the first request with nobody waiting starts it
        assert policy._burst_left == BURST - 1 or policy._probing
