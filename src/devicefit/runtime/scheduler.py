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
import contextlib
import threading
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
    __slots__ = ("cancel_requested", "feeds", "future", "loop", "state")

    def __init__(self, feeds: Any, future: asyncio.Future, loop: asyncio.AbstractEventLoop) -> None:
        self.feeds = feeds
        self.future = future
        self.loop = loop
        self.state = "queued"  # -> running -> done
        self.cancel_requested = False


def _resolve(fut: asyncio.Future, result: Any, exc: BaseException | None) -> None:
    if fut.done():  # the awaiting task was cancelled meanwhile
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


class InFlightScheduler:
    """Runs ``run(feeds)`` on up to ``max_in_flight`` threads for awaiting callers (thread-safe)."""

    def __init__(
        self,
        run: Callable[[Any], Any],
        max_in_flight: int = 1,
        overflow: str = "wait",
        max_queue: int | None = None,
        name: str = "devicefit-worker",
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
        self._cond = threading.Condition()
        self._queue: deque[_Request] = deque()
        self._admission: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = deque()
        self._running = 0
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._stats = Accounting()

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
        return list(self._threads)

    # ------------------------------------------------------------------ submit
    def _full(self) -> bool:
        if self.max_queue is None:
            return False
        return self._running + len(self._queue) >= self.max_in_flight + self.max_queue

    async def submit(self, feeds: Any) -> Any:
        """Run ``feeds`` when a slot is free; returns the result or raises the request's outcome."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        req = _Request(feeds, fut, loop)
        with self._cond:
            if self._closing:
                raise Dropped("the model is unloaded; load() it again before predicting")
            self._stats.submitted += 1
        while True:
            with self._cond:
                # NOTE: re-checked on every pass: a waiter woken for a freed slot just before close() must not
                # enqueue (that would start a fresh, never-joined worker running on a closed model)
                if self._closing:
                    self._stats.dropped += 1
                    raise Dropped("request dropped: the model was unloaded before it ran")
                if not self._full():
                    self._enqueue(req)
                    break
                if self.overflow == "reject":
                    self._stats.rejected += 1
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
                self._admission.append((loop, admit))
            try:
                await admit
            except asyncio.CancelledError:
                with self._cond:
                    self._stats.cancelled += 1
                    if (loop, admit) in self._admission:
                        self._admission.remove((loop, admit))
                    else:  # it was woken for a slot it will not take: pass the wake-up on
                        self._wake_admission()
                raise
            except Dropped:
                with self._cond:
                    self._stats.dropped += 1
                raise
        try:
            return await fut
        except asyncio.CancelledError:
            with self._cond:
                if req.state == "queued":
                    self._queue.remove(req)
                    req.state = "done"
                    self._stats.cancelled += 1
                    self._wake_admission()
                elif req.state == "running":
                    req.cancel_requested = True  # counted, and its slot freed, when the call returns
            raise

    def _enqueue(self, req: _Request) -> None:
        if self._closing:  # never start a worker that close() will not join
            self._drop(req, "the model was unloaded before it ran")
            return
        self._queue.append(req)
        self._stats.peak_queued = max(self._stats.peak_queued, len(self._queue))
        if len(self._threads) < self.max_in_flight:
            t = threading.Thread(target=self._worker, name=f"{self.name}-{len(self._threads)}", daemon=True)
            self._threads.append(t)
            t.start()
        self._cond.notify()

    def _drop(self, req: _Request, why: str) -> None:
        req.state = "done"
        self._stats.dropped += 1
        req.loop.call_soon_threadsafe(_resolve, req.future, None, Dropped(f"request dropped: {why}"))

    def _wake_admission(self) -> None:
        while self._admission:
            loop, admit = self._admission.popleft()
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, admit, None, None)
                return

    # ------------------------------------------------------------------ workers
    def _worker(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                req = self._queue.popleft()
                req.state = "running"
                self._running += 1
                self._stats.peak_in_flight = max(self._stats.peak_in_flight, self._running)
            result: Any = None
            exc: BaseException | None = None
            try:
                result = self.run(req.feeds)
            except (
                BaseException
            ) as e:  # fails this request only (even SystemExit & co.); the worker lives on,
                exc = e  # the slot is released and the caller's future resolved below
            with self._cond:
                self._running -= 1
                req.state = "done"
                if req.cancel_requested:
                    self._stats.cancelled += 1
                elif exc is not None:
                    self._stats.failed += 1
                else:
                    self._stats.completed += 1
                self._wake_admission()
            if not req.cancel_requested and not req.loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop closed since the check: nobody awaits
                    req.loop.call_soon_threadsafe(_resolve, req.future, result, exc)

    def close(self, timeout: float | None = None) -> None:
        """Drop queued requests, let running ones finish, and join the worker threads."""
        with self._cond:
            self._closing = True
            while self._queue:
                self._drop(self._queue.popleft(), "the model was unloaded before it ran")
            while self._admission:
                loop, admit = self._admission.popleft()
                if not loop.is_closed():
                    loop.call_soon_threadsafe(_resolve, admit, None, Dropped("the model was unloaded"))
            self._cond.notify_all()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout)
        self._threads = []
