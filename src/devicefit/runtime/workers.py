"""The worker side of :class:`~devicefit.runtime.scheduler.InFlightScheduler`: its threads, request coalescing,
and the delivery of results to the callers' event loops.

A worker takes the queue's head (and, where the engine runs a batch cheaper per request, the queued requests
shaped like it: one batch call in one slot), runs it without holding the lock, queues the results for their
loops (one loop callback drains each loop's outbox), and takes the next request in the same critical section
as the last one's end. The delivery learns the worker handoff for the inline policy.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from devicefit.runtime._requests import Outcome, _Request, _resolve, run_as_batch
from devicefit.runtime.batch_costs import BatchCosts
from devicefit.runtime.inline_policy import InlinePolicy

# clean single worker calls (no batch beside them) coalescing needs before it judges a batch, and coalesced calls
# after which it measures single calls again (a reference kept for ever went stale while every burst was batched)
MIN_SINGLES = 3
REFRESH_SINGLES = 64


def _shapes(feeds: Any) -> Any:
    """What must match for two requests to run in one batch call: input names, shapes and dtypes (a key compared
    with ``==`` only against keys made here; runs once a request for a gathered or coalesced batch)."""
    if type(feeds) is dict:
        try:
            if (
                len(feeds) == 1
            ):  # the common case, without a list comprehension's frame (0.5 us against 0.9 us)
                for k, v in feeds.items():
                    return (k, v.shape, v.dtype)
            return tuple([(k, v.shape, v.dtype) for k, v in feeds.items()])
        except AttributeError:  # not arrays
            pass
    if isinstance(feeds, dict):
        return tuple([(k, getattr(v, "shape", None), getattr(v, "dtype", None)) for k, v in feeds.items()])
    return feeds  # not a mapping of arrays (tests' plain values): equal values only


class WorkerSide:
    """Mixin: the worker threads of an InFlightScheduler (state and admission live in the scheduler)."""

    # NOTE: set by InFlightScheduler.__init__; declared here for the type checker
    run: Callable[[Any], Any]
    run_batch: Callable[[list[Any]], list[Any]] | None
    batch_limit: Callable[[], int] | None
    batched_runs: int
    batch_costs: BatchCosts
    max_in_flight: int
    policy: InlinePolicy
    inline_runs: int
    _cond: threading.Condition
    _queue: deque[_Request]
    _outbox: dict[asyncio.AbstractEventLoop, list[tuple[_Request, Any, BaseException | None]]]
    _clock: Callable[[], float]
    _free: int
    _running: int
    _closing: bool
    _batch_starts: int
    _batches_running: int
    _clean_singles: int
    _batches_since_singles: int

    def _startable(self) -> bool:
        raise NotImplementedError

    def _start(self, req: _Request) -> None:
        raise NotImplementedError

    def _finish(self, req: _Request, end: float, failed: bool) -> None:
        raise NotImplementedError

    def _settle(self, req: _Request, outcome: str) -> None:
        raise NotImplementedError

    def _kick(self, wake: bool = True) -> None:
        raise NotImplementedError

    def _worker(self) -> None:
        cold = True
        req: _Request | None = None  # taken in the same critical section as the previous request's end
        while True:
            if req is None:
                with self._cond:
                    # NOTE: a free slot, not only a queued request: requests run inline on callers' threads
                    # (_run_inline) hold slots too, so max_in_flight workers alone do not bound what runs
                    while not self._closing and not self._startable():
                        self._cond.wait()
                    if not self._startable():  # closing: the queue was dropped; nothing to run
                        return
                    req = self._take(cold)
                cold = False
            # (re)stamped here: a request taken at the last one's end also waited for that one's post
            req.started = self._clock()
            riders = req.riders
            batched = False
            if riders:
                outcomes, batched = self._run_together([req, *riders])
                result, exc = outcomes[0]
            else:
                result = None
                exc = None
                try:
                    result = self.run(req.feeds)
                except (
                    BaseException
                ) as e:  # fails this request only (even SystemExit & co.); the worker lives on,
                    exc = e  # the slot is released and the caller's future resolved below
            req.ended = self._clock()
            loop = req.loop
            assert loop is not None  # worker requests always come from a loop
            with self._cond:
                if riders:
                    self._batches_running -= 1
                if batched:
                    self.batch_costs.record(len(riders) + 1, req.ended - req.started)
                self._finish(req, req.ended, failed=exc is not None)
                # NOTE: one wake-up of the loop for every result that finished before it got to the first:
                # the callback drains the loop's outbox (results that coincide, or pile up on a busy loop)
                posts: list[asyncio.AbstractEventLoop] = []
                if not req.cancel_requested:
                    self._to_outbox(req, result, exc, posts)
                for rider, (r_result, r_exc) in zip(riders, outcomes[1:] if riders else ()):
                    rider.ended = req.ended
                    self._settle(
                        rider, "cancelled" if rider.cancel_requested else "failed" if r_exc else "completed"
                    )
                    if not rider.cancel_requested:
                        self._to_outbox(rider, r_result, r_exc, posts)
                # NOTE: the next request is taken here, in the same critical section: under a backlog every
                # lock round trip is one more wait for the lock and the GIL the loop thread and the other worker
                # contend for (a worker then paid ~50 us of its own bookkeeping per request)
                nxt = self._take(False) if self._startable() else None
                if nxt is not None and nxt.ready is not None and nxt.ready < req.ended:
                    # it was ready (a slot free) while this call ran, and no other worker took it: it waited for
                    # this worker, and that wait overlapped this call (useful work), so it is no handoff sample
                    nxt.waited_for_worker = True
            for target in posts:
                if not self._post_outbox(target):
                    with self._cond:
                        self._outbox.pop(target, None)  # the loop closed: nobody will await these
            req = nxt

    def _to_outbox(
        self, req: _Request, result: Any, exc: BaseException | None, posts: list[asyncio.AbstractEventLoop]
    ) -> None:
        """Queue ``req``'s result for its loop (lock held); a loop with nothing queued yet goes in ``posts``."""
        loop = req.loop
        assert loop is not None
        box = self._outbox.get(loop)
        if box is None:
            box = self._outbox[loop] = []
            posts.append(loop)
        box.append((req, result, exc))

    def _run_together(self, reqs: list[_Request]) -> tuple[list[Outcome], bool]:
        """Run coalesced requests as one batch call (True); if it fails, each alone (False: a failure is its
        own request's)."""
        assert self.run_batch is not None
        outcomes, batched = run_as_batch(self.run_batch, self.run, [r.feeds for r in reqs])
        self.batched_runs += batched
        return outcomes, batched

    def _take(self, cold: bool) -> _Request:
        """Take the queue's head to run on this worker (lock held; ``_startable()`` was true)."""
        req = self._queue.popleft()
        self._free -= 1
        req.cold = cold
        req.queued_behind = bool(self._queue)
        self._start(req)
        if self._queue and self.run_batch is not None and not req.probe:
            self._coalesce(req)
        self._kick()  # another idle worker may take the next one (a probe held it back)
        return req

    def _coalesce(self, head: _Request) -> None:
        """Take queued requests shaped like ``head`` to run with it in one batch call (lock held).

        One request is left queued for each other worker that could start one now: two calls at once beat one
        batch on a thread for models whose batch gains little (a CNN: 1.25x per sample batched by 2, against
        ~1.5x for two threads on two cores), and batches form where requests pile up (a burst, a busy machine).
        """
        limit = self.batch_limit() if self.batch_limit is not None else 1
        spare = max(0, min(self._free, self.max_in_flight - self._running))
        take = min(limit - 1, len(self._queue) - spare)
        if take <= 0:
            return
        # only where a batch is measured cheaper per request than a call each (batch_costs.py)
        if self._batches_since_singles >= REFRESH_SINGLES:
            self._batches_since_singles = 0
            self._clean_singles = 0  # what single calls cost now: measured again before the next batch
        single = self.policy.worker_call_s if self.policy.worker_call_s is not None else self.policy.call_s
        if single is None or self._clean_singles < MIN_SINGLES:
            # nothing to judge a batch by yet: single calls first (two workers each running one measure what a
            # single call costs beside another; every batch would crowd them out of the samples). A reference of
            # one or two samples read 6.1 ms for a 2 ms call on a loaded machine, and batches 2x slower passed.
            return
        if self.batch_costs.decide(take + 1, single) == "no":
            return
        shapes = _shapes(head.feeds)
        riders: list[_Request] = []
        while len(riders) < take and self._queue:
            nxt = self._queue[0]
            if nxt.probe or _shapes(nxt.feeds) != shapes:
                break
            self._queue.popleft()
            nxt.state = "running"
            nxt.started = head.started
            riders.append(nxt)
        head.riders = riders
        if riders:
            self._batch_starts += 1
            self._batches_running += 1
            self._batches_since_singles += 1

    def _post_outbox(self, loop: asyncio.AbstractEventLoop) -> bool:
        if loop.is_closed():
            return False
        try:
            loop.call_soon_threadsafe(self._deliver, loop)
        except RuntimeError:  # closed between the check and the call
            return False
        return True

    def _deliver(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the callers' loop: resolve the futures of the results posted to it; learn the handoffs."""
        now = self._clock()
        with self._cond:
            done = self._outbox.pop(loop, [])
            for req, _, _ in done:
                # NOTE: not a probe's (it woke threads that had slept, which requests under load do not pay),
                # nor one a new worker thread took first (its dispatch was the thread's start: 3-4 ms measured)
                # NOTE: nor one of a backlog (others queued when it started, or results delivered together): its
                # result also waited for the loop to deliver the rest and finish their tasks (a gathered burst of
                # 200 read a 1.3 ms median "handoff" and sent the CNN inline, 1.0x, for the closed loop after)
                if (
                    req.dispatch_s is not None
                    and req.ended is not None
                    and not req.probe
                    and not req.cold
                    and not req.queued_behind
                    and not req.waited_for_worker
                    and len(done) == 1
                ):
                    # NOTE: while an inline or caller-lane call ran on an awaiting thread, the result may have
                    # waited for it: that wait overlapped useful work, it is not handoff (counting it made the
                    # policy settle on inline at 0.99x sync where the workers with the caller lane gave 1.38x,
                    # and a burst measured while requests ran inline read 0.7-0.9 ms of "handoff")
                    overlapped = self.inline_runs != req.inline_runs
                    self.policy.record_handoff(req.dispatch_s + (0.0 if overlapped else now - req.ended))
        for req, result, exc in done:
            assert req.future is not None
            _resolve(req.future, result, exc)
