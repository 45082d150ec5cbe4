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
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

OVERFLOW_POLICIES = ("wait", "drop_oldest", "reject")


class Dropped(Exception):
    """The request was dropped before it ran (a fresher one took its place, or the model was unloaded)."""


class Rejected(Exception):
    """The request was refused because the model was at capacity (``overflow="reject"``)."""


@dataclass
class Accounting:
    """What happened to every request; ``submitted`` always equals the sum of the outcomes plus
    the requests still pending."""

    submitted: int = 0
    completed: int = 0
    failed: int = 0
    dropped: int = 0
    rejected: int = 0
    cancelled: int = 0
    peak_in_flight: int = 0
    peak_queued: int = 0

    @property
    def settled(self) -> int:
        return self.completed + self.failed + self.dropped + self.rejected + self.cancelled


class _Request:
    """One request's life: new -> waiting (for admission) -> queued -> running -> done.

    ``outcome`` is the Accounting field it was counted in once done, so a caller's late cancellation can move it.
    """

    __slots__ = ("admit", "cancel_requested", "feeds", "future", "loop", "outcome", "state")

    def __init__(self, feeds: Any, future: asyncio.Future, loop: asyncio.AbstractEventLoop) -> None:
        self.feeds = feeds
        self.future = future
        self.loop = loop
        self.state = "new"
        self.outcome = ""
        self.cancel_requested = False
        self.admit: asyncio.Future | None = None


def _resolve(fut: asyncio.Future, result: Any, exc: BaseException | None) -> None:
    if fut.done():  # the awaiting task was cancelled meanwhile
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


def _post(
    loop: asyncio.AbstractEventLoop, fut: asyncio.Future, result: Any, exc: BaseException | None
) -> bool:
    """Resolve ``fut`` on its loop from any thread; False when the loop is closed (nobody will ever await it)."""
    if loop.is_closed():
        return False
    try:
        loop.call_soon_threadsafe(_resolve, fut, result, exc)
    except RuntimeError:  # closed between the check and the call
        return False
    return True


class InFlightScheduler:
    """Runs ``run(feeds)`` on up to ``max_in_flight`` threads for awaiting callers (thread-safe)."""

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
        self._closing = False
        self._stats = stats if stats is not None else Accounting()
        self.inline_below_s = inline_below_s
        self._call_s: float | None = None  # moving average of engine call durations

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

    def threads(self) -> list[threading.Thread]:
        """Every worker thread this scheduler started (alive or joined)."""
        with self._cond:
            return list(self._started)

    # ------------------------------------------------------------------ submit
    def _full(self) -> bool:
        if self.max_queue is None:
            return False
        return self._running + len(self._queue) >= self.max_in_flight + self.max_queue

    async def submit(self, feeds: Any, *, counted: bool = False) -> Any:
        """Run ``feeds`` when a slot is free; returns the result or raises the request's outcome.

        Every call is counted once as submitted (unless ``counted``: the caller already did) and once in the
        outcome it ends with, whichever thread settles it.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        req = _Request(feeds, fut, loop)
        with self._cond:
            if not counted:
                self._stats.submitted += 1
            req.state = "waiting"
        inline = False
        while True:
            with self._cond:
                if req.state == "done":  # close() dropped it while it waited for admission
                    raise Dropped("request dropped: the model was unloaded before it ran")
                # NOTE: re-checked on every pass: a waiter woken for a freed slot just before close() must not
                # enqueue (that would start a fresh, never-joined worker running on a closed model)
                if self._closing:
                    self._settle(req, "dropped")
                    raise Dropped("request dropped: the model was unloaded before it ran")
                if self._inline_ok():
                    req.state = "running"  # on this (the caller's) thread: see _run_inline
                    self._running += 1
                    self._stats.peak_in_flight = max(self._stats.peak_in_flight, self._running)
                    inline = True
                    break
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
        # NOTE: a local flag, not req.state: a queued request may already be "running" on a worker by now
        if inline:
            return self._run_inline(req)
        try:
            return await fut
        except asyncio.CancelledError:
            with self._cond:
                if req.state == "queued":
                    self._queue.remove(req)
                    self._settle(req, "cancelled")
                    self._wake_admission()
                elif req.state == "running":
                    req.cancel_requested = True  # counted, and its slot freed, when the call returns
                elif req.outcome != "cancelled":  # settled, but the caller never sees that outcome
                    setattr(self._stats, req.outcome, getattr(self._stats, req.outcome) - 1)
                    self._stats.cancelled += 1
                    req.outcome = "cancelled"
            raise

    def _inline_ok(self) -> bool:
        """Run this request on the caller's thread? Only when engine calls are shorter than a thread handoff.

        A hop to a worker and back costs ~50 us (measured: futures, a self-pipe wake-up, two lock handoffs);
        an engine call shorter than ``inline_below_s`` would spend most of its time there and gain nothing from
        a second thread (calls that short are dominated by Python, which holds the GIL), so it runs inline,
        within the same in-flight bound and accounting. ``None`` turns this off.
        """
        return (
            self.inline_below_s is not None
            and self._call_s is not None
            and self._call_s < self.inline_below_s
            and not self._queue
            and self._running < self.max_in_flight
            and not self._closing
        )

    def _run_inline(self, req: _Request) -> Any:
        start = time.perf_counter()
        try:
            result = self.run(req.feeds)
        except BaseException:
            with self._cond:
                self._finish(req, start, failed=True)
            raise
        with self._cond:
            self._finish(req, start, failed=False)
        return result

    def _finish(self, req: _Request, start: float, failed: bool) -> None:
        """A call ended (lock held): free its slot, count it, learn its duration, wake a waiter."""
        elapsed = time.perf_counter() - start
        self._call_s = elapsed if self._call_s is None else 0.8 * self._call_s + 0.2 * elapsed
        self._running -= 1
        if req.cancel_requested:
            self._settle(req, "cancelled")
        else:
            self._settle(req, "failed" if failed else "completed")
        self._wake_admission()
        self._cond.notify()  # a worker may be waiting for this slot

    def _settle(self, req: _Request, outcome: str) -> None:
        """Count ``req``'s outcome once (under the lock)."""
        req.state = "done"
        req.outcome = outcome
        setattr(self._stats, outcome, getattr(self._stats, outcome) + 1)

    def _enqueue(self, req: _Request) -> None:
        if self._closing:  # never start a worker that close() will not join
            self._drop(req, "the model was unloaded before it ran")
            return
        req.state = "queued"
        self._queue.append(req)
        self._stats.peak_queued = max(self._stats.peak_queued, len(self._queue))
        if len(self._threads) < self.max_in_flight:
            t = threading.Thread(target=self._worker, name=f"{self.name}-{len(self._threads)}", daemon=True)
            self._threads.append(t)
            self._started.append(t)
            t.start()
        self._cond.notify()

    def _drop(self, req: _Request, why: str) -> None:
        self._settle(req, "dropped")
        # a closed loop has nobody left to tell: the request is counted all the same
        _post(req.loop, req.future, None, Dropped(f"request dropped: {why}"))

    def _wake_admission(self) -> None:
        while self._admission:
            req = self._admission.popleft()
            assert req.admit is not None
            if _post(req.loop, req.admit, None, None):
                return
            self._settle(req, "dropped")  # its loop is gone: it will never take the slot

    # ------------------------------------------------------------------ workers
    def _worker(self) -> None:
        while True:
            with self._cond:
                # NOTE: a free slot, not only a queued request: requests run inline on callers' threads
                # (_run_inline) hold slots too, so max_in_flight workers alone do not bound what runs
                while not self._closing and (not self._queue or self._running >= self.max_in_flight):
                    self._cond.wait()
                if not self._queue:
                    return
                if self._running >= self.max_in_flight:  # closing: the queue was dropped; nothing to run
                    return
                req = self._queue.popleft()
                req.state = "running"
                self._running += 1
                self._stats.peak_in_flight = max(self._stats.peak_in_flight, self._running)
            result: Any = None
            exc: BaseException | None = None
            start = time.perf_counter()
            try:
                result = self.run(req.feeds)
            except (
                BaseException
            ) as e:  # fails this request only (even SystemExit & co.); the worker lives on,
                exc = e  # the slot is released and the caller's future resolved below
            with self._cond:
                self._finish(req, start, failed=exc is not None)
            if not req.cancel_requested:
                _post(req.loop, req.future, result, exc)

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
                assert req.admit is not None
                _post(req.loop, req.admit, None, Dropped("the model was unloaded"))
            self._cond.notify_all()
            threads, self._threads = self._threads, []
        for t in threads:
            if t is not threading.current_thread():
                t.join(timeout)
