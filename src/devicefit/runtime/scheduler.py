"""Bounded concurrent execution for ``predict_async``: at most ``max_in_flight`` engine calls at once.

Requests wait in a FIFO queue for one of ``max_in_flight`` worker threads. When the system is full
(``max_in_flight`` running + ``max_queue`` waiting) the overflow policy decides:

* ``wait``: the caller waits to be admitted (backpressure; with ``max_queue=None`` the queue is unbounded
  and the caller's ``await`` is the backpressure).
* ``drop_oldest``: the oldest *waiting* request completes with :class:`Dropped`; the new one is queued.
  A running request is never dropped: an engine call cannot be interrupted.
* ``reject``: the new request fails at once with :class:`Rejected`.

Cancelling a queued request removes it (it never runs). Cancelling a running one cannot stop the engine
call; its result is discarded and its slot is released the moment the call returns, so the bound on
concurrent engine calls holds even under cancellation.

A request whose engine call is measured to be shorter than a worker handoff runs on the awaiting thread instead,
in a slot like any other (:mod:`devicefit.runtime.inline_policy` decides; its *probe* requests run alone). A worker
that finishes takes the next queued request without waking another, and results that finish before the event
loop gets to the first are delivered by one loop callback. Where a backlog is better off on the workers, a request
first gives the loop one turn (:meth:`InFlightScheduler.arrive`), so a burst made at once (``asyncio.gather``) goes
to the workers together instead of running one by one on the awaiting thread.

The worker threads and coalescing live in :mod:`devicefit.runtime.workers`, what runs on the awaiting thread
(inline calls, the caller lane, gathering) in :mod:`devicefit.runtime.caller_side`; admission, queueing,
cancellation and the accounting here.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from devicefit.runtime._requests import Accounting, Dropped, Rejected, _post, _Request, _Ticket
from devicefit.runtime.batch_costs import BatchCosts
from devicefit.runtime.caller_side import CallerSide
from devicefit.runtime.gather import Gathering
from devicefit.runtime.inline_policy import PROBE, InlinePolicy
from devicefit.runtime.workers import WorkerSide

OVERFLOW_POLICIES = ("wait", "drop_oldest", "reject")
# how long the process's exit waits for the engine calls still running on workers (then it leaves them)
EXIT_WAIT_S = 60.0

_live: weakref.WeakSet[InFlightScheduler] = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    """Let the engine calls still running on workers end, and join the workers, before the process ends.

    Workers are daemon threads (an idle one must not keep the process alive). One still inside an engine call
    when the interpreter finalized was aborted by torch's C++ runtime ('terminate called without an active
    exception', exit 134): a script whose ``asyncio.run`` returned with requests in flight. Exit handlers run
    before daemon threads are stopped, so closing here lets those calls finish (queued requests are dropped).
    """
    for sched in list(_live):
        sched.close(EXIT_WAIT_S)


__all__ = ["OVERFLOW_POLICIES", "Accounting", "Dropped", "InFlightScheduler", "Rejected"]


class InFlightScheduler(CallerSide, WorkerSide):
    """Runs ``run(feeds)`` on up to ``max_in_flight`` threads for awaiting callers (thread-safe).

    Requests whose engine calls are too short to gain from a worker thread run on the awaiting thread instead,
    within the same bound and accounting (see :mod:`devicefit.runtime.inline_policy`; ``inline_below_s`` caps
    how long one such call may block the event loop, None turns it off). ``clock`` is for tests.
    """

    def __init__(
        self,
        run: Callable[[Any], Any],
        max_in_flight: int = 1,
        overflow: str = "wait",
        max_queue: int | None = None,
        name: str = "devicefit-worker",
        *,
        lock: threading.Lock | None = None,
        stats: Accounting | None = None,
        inline_below_s: float | None = None,
        policy: InlinePolicy | None = None,
        clock: Callable[[], float] = time.perf_counter,
        run_batch: Callable[[list[Any]], list[Any]] | None = None,
        batch_limit: Callable[[], int] | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {OVERFLOW_POLICIES}")
        if max_queue is None and overflow == "drop_oldest":
            max_queue = max_in_flight
        if max_queue is None and overflow == "reject":
            max_queue = 0
        if overflow == "drop_oldest" and max_queue is not None and max_queue < 1:
            raise ValueError("drop_oldest needs max_queue >= 1 (only waiting requests can be dropped)")
        self.run = run
        # request coalescing: a worker taking the queue's head also takes queued requests with the same input
        # shapes, up to batch_limit() in all, and runs them as one run_batch call (one slot, one engine call)
        self.run_batch = run_batch
        self.batch_limit = batch_limit
        self.batched_runs = 0  # engine calls that ran more than one request
        self.batch_costs = BatchCosts()  # what the workers' batch calls cost per request (batch_costs.py)
        # batch calls (a worker's coalesced, an awaiting thread's gathered) started so far, and running now: a
        # single call that a batch ran beside is no sample of what a single call costs (see _finish)
        self._batch_starts = 0
        self._batches_running = 0
        self._clean_singles = 0  # such single worker calls measured since coalescing last refreshed them
        self._batches_since_singles = 0  # coalesced calls since then
        self.max_in_flight = max_in_flight
        self.overflow = overflow
        self.max_queue = max_queue
        self.name = name
        # A handle passes its own lock and Accounting, so its state and every scheduler's counts change under
        # one lock (no count is lost between a scheduler closing and the handle reading it).
        self._cond = threading.Condition(lock)
        self._queue: deque[_Request] = deque()
        self._admission: deque[_Request] = deque()
        self._running = 0
        self._threads: list[threading.Thread] = []  # live workers, joined by close()
        self._started: list[threading.Thread] = []  # every worker ever started (introspection, tests)
        _live.add(self)  # closed at the process's exit
        self._closing = False
        self._free = 0  # live workers not running a request (waiting, or about to look at the queue again)
        self._stats = stats if stats is not None else Accounting()
        self.policy = (
            policy
            if policy is not None
            else InlinePolicy(inline_below_s, lanes=max(1, min(max_in_flight, os.cpu_count() or 1)))
        )
        self._clock = clock
        # results waiting to be delivered, per event loop (one loop callback drains each)
        self._outbox: dict[asyncio.AbstractEventLoop, list[tuple[_Request, Any, BaseException | None]]] = {}
        self._starts = 0  # calls started so far: a call that saw no other start ran solo
        self._solo_running = False  # a probe runs: nothing else starts until it ends
        self.caller_lane_runs = 0  # requests run on the awaiting thread while a worker ran another
        self.inline_runs = 0  # requests run on an awaiting thread (inline or caller lane)
        self._inline_running = 0  # of those, running now
        self._arriving = 0  # requests that gave the loop a turn before their route (see arrive())
        self.gathering = Gathering()  # inline requests of several callers, run as one batch (gather.py)

    @property
    def inline_below_s(self) -> float | None:
        return self.policy.max_block_s

    # ------------------------------------------------------------------ introspection
    @property
    def stats(self) -> Accounting:
        with self._cond:
            return replace(self._stats)

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._running

    @property
    def queued(self) -> int:
        with self._cond:
            return len(self._queue)

    def results_waiting(self) -> bool:
        """Worker results are posted to an event loop that has not delivered them yet (a hint: no lock)."""
        return bool(self._outbox)

    def threads(self) -> list[threading.Thread]:
        """Every worker thread this scheduler started (alive or joined)."""
        with self._cond:
            return list(self._started)

    # ------------------------------------------------------------------ submit
    def _full(self) -> bool:
        if self.max_queue is None:
            return False
        return self._running + len(self._queue) >= self.max_in_flight + self.max_queue

    async def submit(self, feeds: Any, *, counted: bool = False, route: str | None = None) -> Any:
        """Run ``feeds`` when a slot is free; returns the result or raises the request's outcome.

        Every call is counted once as submitted (unless ``counted``: the caller already did) and once in the
        outcome it ends with, whichever thread settles it. ``route``: what :meth:`begin_locked` said (by
        default asked here).
        """
        loop = asyncio.get_running_loop()
        if route is None and self.wants_arrivals():
            try:
                await self.arrive()
            except asyncio.CancelledError:
                with self._cond:
                    self._stats.submitted += not counted
                    self._stats.cancelled += 1
                raise
        fut: asyncio.Future = loop.create_future()
        req = _Request(feeds, fut, loop)
        ticket: _Ticket | None = None
        with self._cond:
            if not counted:
                self._stats.submitted += 1
            req.state = "waiting"
            if route is None:
                route, ticket = self.begin_locked()
            req.probe = route == PROBE
        if ticket is not None:  # on this (the caller's) thread
            return self._run_inline(feeds, ticket)
        while True:
            with self._cond:
                if req.state == "done":  # close() dropped it while it waited for admission
                    raise Dropped("request dropped: the model was unloaded before it ran")
                # NOTE: re-checked on every pass: a waiter woken for a freed slot just before close() must not
                # enqueue (that would start a fresh, never-joined worker running on a closed model)
                if self._closing:
                    self._settle(req, "dropped")
                    raise Dropped("request dropped: the model was unloaded before it ran")
                if not self._full():
                    self._enqueue(req)
                    break
                if self.overflow == "reject":
                    self._settle(req, "rejected")
                    raise Rejected(
                        f"model at capacity ({self._running} running, {len(self._queue)} queued); retry later, "
                        "raise max_in_flight / max_queue, or use overflow='wait'"
                    )
                if self.overflow == "drop_oldest" and self._queue:
                    self._drop(
                        self._queue.popleft(), "a fresher request replaced it (overflow='drop_oldest')"
                    )
                    self._enqueue(req)
                    break
                admit: asyncio.Future = loop.create_future()
                req.admit = admit
                self._admission.append(req)
            try:
                await admit
            except asyncio.CancelledError:
                with self._cond:
                    if req.state != "done":
                        self._settle(req, "cancelled")
                        if req in self._admission:
                            self._admission.remove(req)
                        else:  # it was woken for a slot it will not take: pass the wake-up on
                            self._wake_admission()
                raise
            except Dropped:  # close() counted it
                raise
        try:
            return await fut
        except asyncio.CancelledError:
            with self._cond:
                if req.state == "queued":
                    self._queue.remove(req)
                    self._settle(req, "cancelled")
                    self._wake_admission()
                    self._kick()  # a probe at the head may have held others back
                elif req.state == "running":
                    req.cancel_requested = True  # counted, and its slot freed, when the call returns
                elif req.outcome != "cancelled":  # settled, but the caller never sees that outcome
                    setattr(self._stats, req.outcome, getattr(self._stats, req.outcome) - 1)
                    self._stats.cancelled += 1
                    req.outcome = "cancelled"
            raise

    def _startable(self) -> bool:
        """A worker may start the queue's head now (lock held)."""
        if not self._queue or self._running >= self.max_in_flight or self._solo_running:
            return False
        return not self._queue[0].probe or self._running == 0

    def _kick(self, wake: bool = True) -> None:
        """Wake a worker if the head of the queue can start; stamp when it became ready (the dispatch clock).

        ``wake=False``: the calling worker takes it itself (waking another would cost a wake-up for nothing).
        """
        if self._startable():
            head = self._queue[0]
            if head.ready is None:
                head.ready = self._clock()
            if wake:
                self._cond.notify()

    def _start(self, req: _Request) -> None:
        """``req`` starts running (lock held): take a slot, note what it overlaps."""
        req.state = "running"
        self._running += 1
        if self._running > self._stats.peak_in_flight:
            self._stats.peak_in_flight = self._running
        self._starts += 1
        req.epoch = self._starts
        req.alone = self._running == 1
        req.batch_epoch = -1 if self._batches_running else self._batch_starts
        now = self._clock()
        if req.ready is not None:
            req.dispatch_s = now - req.ready
        req.inline_runs = self.inline_runs - self._inline_running  # one running now overlaps it too
        if req.probe:
            self._solo_running = True
            self.policy.probe_started(now)
        req.started = now

    def _finish(self, req: _Request, end: float, failed: bool) -> None:
        """A worker's call ended (lock held): free its slot, count it, learn its duration, wake a waiter."""
        # NOTE: only a call that nothing overlapped measures the engine: one that shared the machine with
        # another call also measured its waits for the GIL and a CPU. A call that a batch ran beside measured
        # the batch too (the cache, the memory bandwidth: a 160 px CNN's single calls read 4.4 ms beside batches,
        # 1.3 ms beside single calls), and coalescing judges batches against these samples: it is none.
        # A batch call's duration is no sample of one request's either.
        if not req.riders and req.batch_epoch == self._batch_starts:
            self.policy.record_call(
                end - req.started, solo=req.alone and self._starts == req.epoch, on_worker=True, cold=req.cold
            )
            self._clean_singles += not req.cold
        if req.probe:
            self._solo_running = False
        self._running -= 1
        self._free += 1
        if req.cancel_requested:
            self._settle(req, "cancelled")
        else:
            self._settle(req, "failed" if failed else "completed")
        if self._admission:
            self._wake_admission()
        if self._queue:
            self._kick(wake=False)  # this worker loops back and takes the head itself

    def _settle(self, req: _Request, outcome: str) -> None:
        """Count ``req``'s outcome once (under the lock)."""
        req.state = "done"
        req.outcome = outcome
        setattr(self._stats, outcome, getattr(self._stats, outcome) + 1)
        if req.probe:
            self.policy.probe_ended()

    def _enqueue(self, req: _Request) -> None:
        if self._closing:  # never start a worker that close() will not join
            self._drop(req, "the model was unloaded before it ran")
            return
        req.state = "queued"
        self._queue.append(req)
        self._stats.peak_queued = max(self._stats.peak_queued, len(self._queue))
        # NOTE: a new thread only when the free workers cannot take every queued request: a new thread's start
        # and its first call cost 3-4 ms and 5.6 ms on a 0.65 ms CNN (one request at a time started a second
        # thread before)
        if len(self._threads) < self.max_in_flight and self._free < len(self._queue):
            self._free += 1
            t = threading.Thread(target=self._worker, name=f"{self.name}-{len(self._threads)}", daemon=True)
            self._threads.append(t)
            self._started.append(t)
            t.start()
        self._kick()

    def _drop(self, req: _Request, why: str) -> None:
        self._settle(req, "dropped")
        assert req.loop is not None and req.future is not None  # only queued requests are dropped
        # a closed loop has nobody left to tell: the request is counted all the same
        _post(req.loop, req.future, None, Dropped(f"request dropped: {why}"))

    def _wake_admission(self) -> None:
        while self._admission:
            req = self._admission.popleft()
            assert req.admit is not None and req.loop is not None
            if _post(req.loop, req.admit, None, None):
                return
            self._settle(req, "dropped")  # its loop is gone: it will never take the slot

    def close(self, timeout: float | None = None) -> None:
        """Drop queued and waiting requests, let running ones finish, and join the worker threads.

        Idempotent and safe from any thread; an event loop that closed meanwhile is skipped, not an error.
        """
        with self._cond:
            self._closing = True
            while self._queue:
                self._drop(self._queue.popleft(), "the model was unloaded before it ran")
            while self._admission:
                req = self._admission.popleft()
                self._settle(req, "dropped")
                assert req.admit is not None and req.loop is not None
                _post(req.loop, req.admit, None, Dropped("the model was unloaded"))
            self._cond.notify_all()
            threads, self._threads = self._threads, []
        for t in threads:
            if t is not threading.current_thread():
                t.join(timeout)
