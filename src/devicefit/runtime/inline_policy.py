"""Where an async request runs: on the awaiting thread (inline) or on a worker, decided from measurements.

Inline, the awaiting thread gives ``1 / c`` requests per second, ``c`` the engine call alone. The worker route
comes with the *caller lane* (the scheduler runs a request on the awaiting thread while a worker runs another):
with ``k`` lanes (max_in_flight, at most the CPU count) it gives ``1 / (l + h / 2) + (k - 1) / (w + h + l)``, where
``l`` is the awaiting thread's call beside a worker's (the lane call), ``w`` a worker's call as it runs under this
load (beside another call it waits for the GIL, shares caches and memory bandwidth: 1.1-1.6x ``c`` for a small CNN
on two cores) and ``h`` the *handoff* (wake a worker, then resolve a future on the event loop: ~50-140 us on this
2-vCPU VM, far more on a busy machine); half of it is the awaiting thread's own work, and a worker's result waits
for the lane call to end; or, without the lane, ``k / (w + h)`` (the workers alone: better where calls slow down a
lot beside each other, as the lane's lockstep then costs more than the handoffs it saves). The worker route uses
the faster of the two. A request runs inline when ``c`` times that rate is at most ``MARGIN`` (close calls stay
inline, so async does not fall below sync); with one lane, when ``c <= MARGIN * (w + h)``. Fitted on
``benchmarks/interp_async.py``: small CNN predicted 1.29x, measured 1.34x; vit 1.20x / 1.21x; the tiny MLP and
bert_encoder inline. Inline requests stay within the in-flight bound and the accounting; ``max_block_s`` caps the
(uncontended) call that may block the event loop.

All three figures are measured, none is assumed:

* **call time** ``c``: the fastest of the last ``CALL_WINDOW`` *solo* calls (calls no other call of the scheduler
  overlapped). A call measured while another ran includes the time it waited for the GIL and a CPU, and other
  processes only ever make a call slower, so the minimum is the uncontended cost. (The bug this replaced: one
  moving average over all calls, measured on worker threads that always overlapped, stayed at 3x the
  uncontended 36 us of a tiny model and kept the inline path off.)
* **worker call time** ``w``: the median of the last ``HANDOFF_WINDOW`` calls on worker threads, contended or not
  (a new thread's first call, its warm-up, is not one).
* **lane call time** ``l``: the median of the last ``HANDOFF_WINDOW`` caller-lane calls (``w`` until one ran).
* **handoff** ``h``: the median of the last ``HANDOFF_WINDOW`` worker requests, each (became ready to start ->
  started on a worker) + (call ended -> its future resolved on the loop). Both are real costs whatever the machine
  is doing, so they are not filtered: on a busy machine wake-ups are slower and more requests run inline.

Neither is measured on one path while requests take the other (steady async load overlaps every worker call;
inline requests use no worker), so after ``refresh_every`` requests without a fresh sample, and at most every
``refresh_interval_s``, the missing one is refreshed: a *probe* (one request that runs on a worker alone:
nothing else starts while it runs) measures the call time; a *burst* of ``BURST`` requests sent to workers
measures the handoff as it is under load (a lone request wakes threads that slept: a probe's handoff is not
counted); a burst starts the handoff and worker-call windows afresh, and the route waits for ``MIN_SAMPLES`` of
its handoffs (a burst short of them sends up to ``EXTEND`` more requests to the workers, then decides on the
samples it has). A burst that confirms the route doubles the wait before the next one (up to ``MAX_BACKOFF`` times
``refresh_interval_s``: a burst sends requests the slow way); one that flips it starts again at the minimum. A
machine that got busier or quieter, or a model whose inputs changed size, is noticed within one refresh. Until both are known, requests go to workers (the behaviour with inline off).

A call so short that the workers would lose even at their best is *plainly inline*: ``c`` times the worker
route's rate stays within ``MARGIN`` with every worker and lane call as fast as ``c`` and the handoff as fast as
the fastest of all measured here, ``MIN_SAMPLES`` at least (:attr:`InlinePolicy.handoff_floor_s`; a handoff only
gets slower with load). Its
route then needs no fresh handoff: a refresh burst keeps it inline while its samples come in (without this, the
requests after a burst's went to the workers until it had ``MIN_SAMPLES``, and under a burst of requests the
queue they formed held every slot: onnxruntime's 11 us MLP ran a 400-request ``asyncio.gather`` at 0.32x sync in
such a round, 0.6x-0.8x in the others), it is refreshed at the longest back-off only, and its call time is
refreshed by a solo call on the awaiting thread (:attr:`InlinePolicy.solo_due`) instead of a probe, which runs on
a worker and holds every request queued behind it there.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

INLINE, WORKER, PROBE = "inline", "worker", "probe"
MARGIN = 1.15
CALL_WINDOW = 8
HANDOFF_WINDOW = 15
BURST = 8
# handoffs measured before the workers are given up for inline: one sample decided it before, and a slow one (a
# thread's first call, a machine hiccup) sent a CNN inline at 1.0x for good; 4 read a 531 us median on a CNN whose
# handoff is ~110 us and sent it inline at 0.99x
MIN_SAMPLES = 8
RECHECK = 32  # requests between looks at the clock while a due refresh waits for refresh_interval_s
# a refresh burst that confirms the route doubles the time to the next one, up to this many refresh_interval_s:
# each burst sends BURST requests the slow way (bert_encoder, inline: 8 requests of ~0.9 ms on workers instead of
# 0.3 ms inline every 0.2 s cost ~5% of its throughput, 0.88x-0.92x in the rounds with a burst against 0.95x-1.13x
# without, same run); a route that flips starts again at refresh_interval_s
MAX_BACKOFF = 32
# requests a burst short of MIN_SAMPLES handoff samples goes on sending to the workers (then the route is decided
# on the samples it has): results delivered together and requests that waited for a busy worker are no samples,
# and a burst of two closed-loop callers often gave 2 of 8; the route then stayed on the workers until the next
# refresh, 500 requests later
EXTEND = 3 * BURST
# an inline call that moves the call time (the minimum of its window) by at most this share of the call time
# the route was decided on does not decide it again (a quarter of a tiny MLP's inline calls did, ~3 us each)
DRIFT = 0.05


@dataclass
class InlinePolicy:
    """Routes requests and learns from what they measured (not thread-safe: the scheduler's lock guards it).

    Attributes:
        max_block_s: the longest (uncontended) engine call that may run on the awaiting thread; None: never inline.
        refresh_every: requests without a fresh sample before it is refreshed (a probe or a burst).
        refresh_interval_s: seconds between refreshes of one kind at least (a fast model is not probed every
            few milliseconds).
        lanes: requests that can run at once on workers (the scheduler's max_in_flight, at most the CPUs).
        call_s: uncontended engine call time (seconds), None until a solo call was seen.
        worker_call_s: engine call time on worker threads as they run now (seconds), None until one ran.
        handoff_s: worker round-trip overhead (seconds), None until a worker request was measured.
    """

    max_block_s: float | None
    refresh_every: int = 500
    refresh_interval_s: float = 0.2
    lanes: int = 2
    call_s: float | None = None
    worker_call_s: float | None = None
    handoff_s: float | None = None
    lane_call_s: float | None = None
    _calls: deque[float] = field(default_factory=lambda: deque(maxlen=CALL_WINDOW))
    _lane_calls: deque[float] = field(default_factory=lambda: deque(maxlen=HANDOFF_WINDOW))
    _worker_calls: deque[float] = field(default_factory=lambda: deque(maxlen=HANDOFF_WINDOW))
    _handoffs: deque[float] = field(default_factory=lambda: deque(maxlen=HANDOFF_WINDOW))
    _since_call: int = 0
    _since_handoff: int = 0
    _last_probe: float | None = None
    _last_burst: float | None = None
    _burst_left: int = 0
    _probing: bool = False  # a probe is queued or running (one at a time)
    _backoff: int = 1  # the handoff refresh waits refresh_interval_s times this (see MAX_BACKOFF)
    _burst_route: bool | None = None  # the route when the last burst began, until its samples decide
    _inline: bool = False  # prefers_inline(), kept current by the record_ methods
    _backlog: bool = False  # backlog_prefers_workers(), kept current likewise
    _lane: bool = True  # lane_pays(), kept current likewise
    _extend: int = 0  # requests the current burst may still send to the workers while short of samples
    _short: bool = False  # the last burst ended short of MIN_SAMPLES samples: decide on those it has
    handoff_floor_s: float | None = (
        None  # the fastest handoff measured so far (a lower bound on this machine)
    )
    _handoffs_seen: int = 0  # handoff samples ever recorded (the floor counts from MIN_SAMPLES on)
    _plain: bool = False  # plainly_inline(), kept current by the record_ methods
    _decided_call_s: float | None = None  # call_s when the route was last decided

    def worker_cycle_s(self) -> float | None:
        """Seconds a worker spends per request, its call and the handoff (None: not measured yet)."""
        if self.handoff_s is None or self.call_s is None:
            return None
        return (self.worker_call_s if self.worker_call_s is not None else self.call_s) + self.handoff_s

    def plainly_inline(self) -> bool:
        """Whether the awaiting thread beats the workers even at their best: every call on a worker or the lane
        as fast as the solo call ``c``, the handoff the fastest ever measured (see the module's doc)."""
        floor = self.handoff_floor_s
        call = self.call_s
        if (
            floor is None
            or self._handoffs_seen < MIN_SAMPLES  # one slow wake-up is no floor (see MIN_SAMPLES)
            or call is None
            or self.max_block_s is None
            or call >= self.max_block_s
        ):
            return False
        if self.lanes < 2:
            return True
        best = max(
            1.0 / (call + floor / 2) + (self.lanes - 1) / (2 * call + floor), self.lanes / (call + floor)
        )
        return call * best <= MARGIN

    @property
    def solo_due(self) -> bool:
        """A plainly inline route wants its call time refreshed: the next request should run alone on the
        awaiting thread (not gathered with others), its duration a solo sample (cheap: read on every request)."""
        return self._plain and self._since_call > self.refresh_every

    def prefers_inline(self) -> bool:
        """Whether the measurements say the awaiting thread beats ``lanes`` workers."""
        if self._plain:
            return True
        cycle = self.worker_cycle_s()
        if (
            (len(self._handoffs) < MIN_SAMPLES and not self._short)
            or self.max_block_s is None
            or cycle is None
            or self.call_s is None
            or self.call_s >= self.max_block_s
        ):
            return False
        if self.lanes < 2:
            return self.lanes * self.call_s <= MARGIN * cycle
        # The worker route comes with the caller lane (calls under max_block_s, as here): the awaiting thread
        # runs a request per ``l + h / 2`` (``l`` the lane call time, measured beside a worker's call, GIL and
        # cores shared; half the handoff is its own work: submitting, waking, delivering) while each worker
        # runs one per ``w + h + l`` (its result waits for the awaiting thread's call to end). Fitted on the
        # benchmark: small CNN predicted 1.29x, measured 1.34x; vit 1.20x / 1.21x; the tiny MLP and
        # bert_encoder stay inline. ``2 c <= MARGIN (w + h)``, which assumed every request on a worker, sent
        # the small CNN inline (1.0x) whenever a busy spell read w ~1.1 ms, where the lane measured 1.3x-1.5x.
        return self.call_s * max(self._worker_rates()) <= MARGIN

    def _worker_rates(self) -> tuple[float, float]:
        """Requests per second of the worker route (with the caller lane, without it); needs both measured.

        Without the lane, the workers alone run ``lanes / (w + h)``. Which is faster depends on the machine:
        where a call beside another slows down a lot, the lane's lockstep (a worker's result waits for the
        lane call) costs more than the handoff it saves: a 0.92 ms CNN with ``w`` 1.26 ms, ``l`` 1.19 ms and
        ``h`` 0.22 ms predicts 1.05x with the lane (so it ran inline, 0.96x measured) and 1.25x without (the
        bare await-a-thread control read 1.43x in the same run).
        """
        assert self.call_s is not None
        worker = self.worker_call_s if self.worker_call_s is not None else self.call_s
        lane = self.lane_call_s if self.lane_call_s is not None else worker
        handoff = self.handoff_s or 0.0
        with_lane = 1.0 / (lane + handoff / 2) + (self.lanes - 1) / (worker + handoff + lane)
        return with_lane, self.lanes / (worker + handoff)

    def lane_pays(self) -> bool:
        """Whether the worker route should use the caller lane (measured faster than the workers alone; also
        while nothing is measured yet). A refresh burst always uses it (:attr:`uses_lane`): its lane calls keep
        ``l`` fresh."""
        if self.lanes < 2 or self.call_s is None or self.handoff_s is None:
            return True
        with_lane, without = self._worker_rates()
        return with_lane >= without

    @property
    def uses_lane(self) -> bool:
        """lane_pays() as last decided (cheap: read on every worker-route request, without the lock)."""
        return self._lane or self._burst_left > 0

    def backlog_prefers_workers(self) -> bool:
        """With more requests waiting than slots, whether workers beat the awaiting thread for them.

        A backlog runs at most at ``lanes / (w + h)`` on the workers against ``1 / c`` on the awaiting thread
        (which runs one at a time). A worker that finishes takes the next queued request without waking, but
        every result still crosses to the event loop, which delivers them one by one: the handoff ``h`` is
        kept as the per-request cost (an upper bound). A 0.65 ms CNN whose calls take 0.8 ms side by side
        gains (2 / 0.9 ms vs 1 / 0.65 ms); a 25 us MLP does not (a burst of 400 sent to the workers on
        onnxruntime ran at 0.37x sync, inline it stays near parity). Only asked where a request could run on
        the awaiting thread at all (a call under ``max_block_s``).
        """
        if (
            self.lanes < 2
            or self.max_block_s is None
            or self.call_s is None
            or self.worker_call_s is None
            or self.handoff_s is None
        ):
            return False
        if self.call_s >= self.max_block_s:  # nothing runs on the awaiting thread anyway
            return False
        return self.lanes * self.call_s >= MARGIN * (self.worker_call_s + self.handoff_s)

    def may_run_on_caller(self) -> bool:
        """Whether a request may run on the awaiting thread at all: inline, or on the caller lane (a call
        measured under ``max_block_s``)."""
        if self._inline:
            return True
        return self.call_s is not None and self.max_block_s is not None and self.call_s < self.max_block_s

    @property
    def holds_back_for_backlog(self) -> bool:
        """backlog_prefers_workers() as last measured (cheap: read on every request, without the lock)."""
        return self._backlog

    def _decide(self) -> None:
        self._decided_call_s = self.call_s
        was_plain, self._plain = self._plain, self.plainly_inline()
        if was_plain and not self._plain:  # a faster handoff or a slower call: refresh as often as allowed
            self._backoff = 1
        self._inline = self.prefers_inline()
        self._lane = self.lane_pays()
        self._backlog = self.backlog_prefers_workers()
        if self._plain:  # no handoff can change the route but a faster one than ever seen: refresh rarely
            self._backoff = MAX_BACKOFF
            self._extend = 0
            self._burst_route = None
        elif self._burst_route is not None and len(self._handoffs) >= MIN_SAMPLES:
            # the burst's samples decided: the same route again -> refresh less often; a flip -> as often as allowed
            self._backoff = min(2 * self._backoff, MAX_BACKOFF) if self._inline == self._burst_route else 1
            self._burst_route = None

    def route(self, clock: Callable[[], float], crowded: bool = False) -> str:
        """Where the next request should go: ``INLINE``, ``WORKER`` or ``PROBE`` (counts the request).

        The scheduler may still send an ``INLINE`` request to a worker (no free slot, requests queued) and
        runs a ``PROBE`` as soon as nothing else runs; it calls :meth:`probe_started` when the probe starts and
        :meth:`probe_ended` however it ends. ``clock`` is read only when a refresh may be due.

        ``crowded``: other requests are waiting to run with this one (a gathering: a burst made at once). A
        refresh that falls due then waits for a quieter request: its requests would wait for busy workers (no
        samples) and, holding the slots, send the whole burst after them to the workers (onnxruntime's 11 us MLP:
        a 400-request asyncio.gather at 0.45x sync in such a round, 0.7x-0.9x in the others).
        """
        if self.max_block_s is None:
            return WORKER
        self._since_call += 1
        self._since_handoff += 1
        if self._burst_left:
            self._burst_left -= 1
            return WORKER
        if self._extend:  # the burst is short of samples: more requests measure the handoff, up to EXTEND
            if len(self._handoffs) < MIN_SAMPLES:
                self._extend -= 1
                if self._extend:
                    return WORKER
                self._short = True  # none left: decide on the samples there are
                self._decide()
            self._extend = 0  # (enough samples: record_handoff decided already)
        if self._since_call <= self.refresh_every and self._since_handoff <= self.refresh_every:
            # the common case, kept cheap: it runs on every predict_async
            if self.call_s is not None and self.handoff_s is not None:
                return INLINE if self._inline else WORKER
        if self._plain and self._since_call > self.refresh_every:
            return INLINE  # refreshed by a solo call on the awaiting thread (solo_due), not by a probe
        if crowded and self.call_s is not None and self.handoff_s is not None:
            return INLINE if self._inline else WORKER  # a due refresh waits for a quieter request
        if self.call_s is None or self._since_call > self.refresh_every:
            if not self._probing:
                if _due(self._last_probe, clock, self.refresh_interval_s, self.call_s):
                    self._probing = True
                    return PROBE
                self._since_call = self.refresh_every - RECHECK  # not yet: look again RECHECK requests later
        elif self.handoff_s is None or self._since_handoff > self.refresh_every:
            if _due(self._last_burst, clock, self.refresh_interval_s * self._backoff, self.handoff_s):
                self._last_burst = clock()
                self._since_handoff = 0
                self._burst_left = BURST - 1
                # (a plainly inline route keeps its route while the samples come in: nothing to extend for)
                self._extend, self._short = (0 if self._plain else EXTEND), False
                self._burst_route = self._inline if self.handoff_s is not None else None
                # NOTE: the refresh is due because these are stale: decide on the burst's samples alone (kept,
                # the stale half of a window outvoted a burst whose requests partly ran on the caller lane)
                self._handoffs.clear()
                self._worker_calls.clear()
                self._lane_calls.clear()
                return WORKER
            self._since_handoff = self.refresh_every - RECHECK
        return INLINE if self._inline else WORKER

    def route_inline_now(self) -> bool:
        """:meth:`route`'s common case for a request that would run inline, cheaply: True (and the request is
        counted, as ``route`` counts it) when it goes inline with no refresh due and no burst under way; False
        (nothing counted): ask :meth:`route`. Runs on every lone inline request (a tiny model's whole path)."""
        if not self._inline or self._burst_left or self._extend:
            return False
        since_call = self._since_call + 1
        if since_call > self.refresh_every or self._since_handoff >= self.refresh_every:
            return False
        self._since_call = since_call
        self._since_handoff += 1
        return True

    def probe_started(self, now: float) -> None:
        """The probe left the queue."""
        self._last_probe = now
        self._since_call = 0

    def probe_ended(self) -> None:
        """The probe finished, failed, or was cancelled / dropped before it ran."""
        self._probing = False

    def record_call(
        self, seconds: float, solo: bool, on_worker: bool = False, cold: bool = False, lane: bool = False
    ) -> None:
        """One engine call ended; only a solo call's duration says what the engine costs alone.

        ``cold``: a new worker thread's first call, which also paid the thread's warm-up (5.6 ms measured for
        a 0.65 ms compiled CNN call): not a sample of the worker call time (a median of few samples), though
        still one of the call time (the minimum of its window, which a slow sample cannot raise).
        """
        if on_worker and not cold:
            self._worker_calls.append(seconds)
            self.worker_call_s = _median(self._worker_calls)
        if lane:
            self._lane_calls.append(seconds)
            self.lane_call_s = _median(self._lane_calls)
        if not solo:
            if on_worker or lane:
                self._decide()
            return
        calls = self._calls
        evicted = calls[0] if len(calls) == calls.maxlen else None
        calls.append(seconds)
        self._since_call = 0
        if self.call_s is None or seconds < self.call_s:
            self.call_s = seconds
        elif evicted == self.call_s:  # the minimum left the window
            self.call_s = min(calls)
        elif not on_worker:
            return
        decided = self._decided_call_s
        if not on_worker and decided is not None and abs(self.call_s - decided) <= DRIFT * decided:
            return  # (the minimum moves a little every few inline calls: a decision costs ~3 us)
        self._decide()

    def record_handoff(self, seconds: float) -> None:
        """One worker request's dispatch + return latency (not a probe's)."""
        self._handoffs.append(seconds)
        self.handoff_s = _median(self._handoffs)
        self._handoffs_seen += 1
        if self.handoff_floor_s is None or seconds < self.handoff_floor_s:
            self.handoff_floor_s = seconds
        self._since_handoff = 0
        self._decide()


def _median(window: deque[float]) -> float:
    """The upper median of a short window, cheaply (runs on every worker request)."""
    return sorted(window)[len(window) // 2]


def _due(last: float | None, clock: Callable[[], float], interval: float, known: float | None) -> bool:
    """A refresh may run now: never done, nothing known yet, or the last one is ``interval`` old."""
    return last is None or known is None or clock() - last >= interval
