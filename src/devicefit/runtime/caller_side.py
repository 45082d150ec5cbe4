"""The awaiting thread's side of :class:`~devicefit.runtime.scheduler.InFlightScheduler`: requests that run on
the caller's own thread (inline, or on the caller lane beside a worker), the requests of several callers
gathered into one batch call there, and the loop turn a burst takes before it is routed.

Each runs in a slot like a worker request, under the same bound and accounting; :mod:`devicefit.runtime.
inline_policy` says where a request should go, :mod:`devicefit.runtime.gather` when requests should gather.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from devicefit.runtime._requests import Accounting, _Request, _Ticket
from devicefit.runtime.gather import WINDOW, Gathering, Slot
from devicefit.runtime.inline_policy import INLINE, PROBE, InlinePolicy
from devicefit.runtime.workers import _shapes


class CallerSide:
    """Mixin: what an InFlightScheduler runs on the awaiting thread (state and admission live in the scheduler)."""

    # NOTE: set by InFlightScheduler.__init__; declared here for the type checker
    run: Callable[[Any], Any]
    run_batch: Callable[[list[Any]], list[Any]] | None
    batch_limit: Callable[[], int] | None
    max_in_flight: int
    overflow: str
    policy: InlinePolicy
    gathering: Gathering
    inline_runs: int
    caller_lane_runs: int
    _cond: threading.Condition
    _queue: deque[_Request]
    _admission: deque[_Request]
    _stats: Accounting
    _clock: Callable[[], float]
    _running: int
    _inline_running: int
    _starts: int
    _arriving: int
    _solo_running: bool
    _closing: bool
    _batch_starts: int
    _batches_running: int

    def _kick(self, wake: bool = True) -> None:
        raise NotImplementedError

    def _wake_admission(self) -> None:
        raise NotImplementedError

    def wants_arrivals(self) -> bool:
        """Whether a request should :meth:`arrive` before it is routed (a hint, read without the lock).

        Only where a backlog would go to the workers while a lone request may run on the awaiting thread, and
        only with ``overflow="wait"``: every request of a burst then yields once, in order, so admission stays
        first come first served (a dropping policy must see requests in the order they were made).
        """
        return self.overflow == "wait" and self.policy.holds_back_for_backlog

    async def arrive(self) -> None:
        """Give the event loop one turn before this request is routed, so the requests made with it are seen.

        Requests started together (``asyncio.gather`` over a list) each become ready only when the previous
        one returns control: one run on the awaiting thread held the rest back, so a burst of 60 ran one by
        one on the loop thread (1.0x sync) while two workers taking them back to back reach the plain-thread
        speed-up. Yielding first lets every request of the burst register here; :meth:`begin_locked` then
        sends them to the workers while there are more requests (arriving, queued, running) than slots. Two
        closed-loop callers with two slots are no backlog: each worker request would still pay its handoff,
        so the policy's route stands. One loop pass per request (a few us), paid only where
        :meth:`wants_arrivals` (calls of a few hundred us and up).
        """
        with self._cond:
            self._arriving += 1
        try:
            await asyncio.sleep(0)
        finally:
            with self._cond:
                self._arriving -= 1

    def begin_locked(self) -> tuple[str, _Ticket | None]:
        """Route the next request (lock held): ``(route, ticket)``, ticket set when it runs inline right now.

        The caller then runs the engine on its own thread and calls :meth:`end_inline_locked` with the ticket;
        without a ticket it passes ``route`` to :meth:`submit`. Kept lean: it runs on every predict_async.
        """
        route = self.policy.route(self._clock, self.gathering.crowded())
        # NOTE: requests already queued hold their slots (a worker is waking for each): this one may still run
        # here if a slot is left beyond them. Refusing whenever the queue was non-empty sent a request to the
        # workers each time one had not yet woken for the previous one (it needs the GIL this thread holds), so
        # the two requests then ran one after the other on one worker while this thread idled.
        queued = len(self._queue)
        if (
            route == PROBE
            or self._running + queued >= self.max_in_flight
            or (queued and self._queue[0].probe)
            or self._solo_running
            or self._closing
            # more requests than slots (a burst arriving, see arrive()): the workers take them back to back
            or (
                self._arriving
                and self._arriving + queued + self._running >= self.max_in_flight
                and self.policy.holds_back_for_backlog
            )
        ):
            return route, None
        if route != INLINE:
            # The caller lane: while a worker runs another request, the awaiting thread runs this one
            # itself instead of handing it to a second worker. Two requests still run at once, but only the
            # worker's pays a thread handoff, and that handoff overlaps this call (measured on the small CNN:
            # async/sync 1.1-1.3x with every request on workers). Only for calls short enough to block the
            # event loop (``inline_below_s``).
            call = self.policy.call_s
            limit = self.policy.max_block_s
            if (
                self._running + queued < 1
                or call is None
                or limit is None
                or call >= limit
                or not self.policy.uses_lane  # measured slower than the workers alone
            ):
                return route, None
            self.caller_lane_runs += 1
            lane = True
        else:
            lane = False
        self.inline_runs += 1
        self._inline_running += 1
        self._running += 1
        if self._running > self._stats.peak_in_flight:
            self._stats.peak_in_flight = self._running
        self._starts += 1
        return route, (self._starts, self._running == 1, self._clock(), lane)

    def begin_lone_locked(self) -> _Ticket | None:
        """:meth:`begin_locked` for a request with nothing else under way that the measurements send inline (lock
        held): its ticket, or None (nothing counted; :meth:`begin_locked` decides, as for any request).

        A tiny model's whole async path: a handful of attribute checks instead of the general route (no queue,
        no running call, no burst arriving or to hold back, no refresh due: :meth:`InlinePolicy.route_inline_now`).
        """
        if (
            self._running
            or self._queue
            or self._arriving
            or self._closing
            or (self.overflow == "wait" and self.policy.holds_back_for_backlog)  # it must arrive() first
            or not self.policy.route_inline_now()
        ):
            return None
        self.inline_runs += 1
        self._inline_running += 1
        self._running = 1
        if not self._stats.peak_in_flight:
            self._stats.peak_in_flight = 1
        self._starts += 1
        return self._starts, True, self._clock(), False

    def gather_join(self, feeds: Any) -> Slot | None:
        """A slot in the running loop's gathering when this request should wait one turn for company.

        Only for requests that may run on the awaiting thread (inline or on the caller lane) while a backlog
        would not go to the workers, on an engine that runs a batch cheaper per request, with
        ``overflow="wait"``, where gathering is measured to pay (see gather.py). Without the lock: a loop's
        gathering is only ever touched from that loop's thread, and the rest are hints (a request per call:
        a lock round trip here cost 6% of a 25 us call).
        """
        task = id(asyncio.current_task())
        gathering = self.gathering
        if task == gathering.streak_task and gathering.streak >= WINDOW:
            return None  # this task made the last WINDOW requests: no other caller to gather with (Gathering.wanted)
        if (
            self.run_batch is None
            or self.batch_limit is None
            or self.overflow != "wait"
            or self._closing
            # where a backlog goes to the workers (arrive()), they coalesce it; else it may run here
            or self.policy.holds_back_for_backlog
            or not self.policy.may_run_on_caller()
            or self.policy.solo_due  # this one runs alone: its duration refreshes the call time
        ):
            return None
        if not gathering.wanted(self.batch_limit, self.policy.call_s, task):
            return None
        return gathering.join(feeds, asyncio.get_running_loop())

    def gather_riders_locked(self, slot: Slot, feeds: Any) -> list[Slot]:
        """The waiting requests ``slot``'s leader runs with its own, now on the awaiting thread (lock held)."""
        riders = self.gathering.take(slot.loop, _shapes(feeds), self.gathering.limit - 1, _shapes)
        if riders:
            self._batch_starts += 1
            self._batches_running += 1
        return riders

    def end_inline_locked(
        self, ticket: _Ticket, failed: bool, riders: list[Slot] | None = None, batched: bool = True
    ) -> None:
        """An inline call started by :meth:`begin_locked` returned (lock held): count it and learn from it.

        ``riders``: the gathered requests that ran with it, each already resolved; ``batched``: whether they ran
        in one batch call (not: each alone, a failed batch or one the engine was still preparing).
        """
        epoch, alone, started, lane = ticket
        now = self._clock()
        if riders:  # a batch call's duration is no sample of one request's, but of the batch's
            if batched:  # calls one by one are no sample of what a batch costs
                self.gathering.record(len(riders) + 1, now - started)
            else:
                self.gathering.unbatched()
            self.gathering.cycles.note(now, len(riders) + 1 if batched else 0)
            self._batches_running -= 1
            for r in riders:
                if r.exc is None:
                    self._stats.completed += 1
                else:
                    self._stats.failed += 1
        else:
            self.policy.record_call(now - started, solo=alone and self._starts == epoch, lane=lane)
            self.gathering.cycles.note(now, 0 if lane else 1)  # (beside a worker: no cycle of its own)
        self._inline_running -= 1
        self._running -= 1
        if failed:
            self._stats.failed += 1
        else:
            self._stats.completed += 1
        if self._admission:
            self._wake_admission()
        if self._queue:
            self._kick()

    def _run_inline(self, feeds: Any, ticket: _Ticket) -> Any:
        failed = True
        try:
            result = self.run(feeds)
            failed = False
        finally:
            with self._cond:
                self.end_inline_locked(ticket, failed)
        return result
