"""Gathering: requests that run on the awaiting thread, made by several callers at once, run as one batch call.

Calls of a few tens of microseconds run on the awaiting thread (:mod:`devicefit.runtime.inline_policy`): a
worker's handoff costs more than the call. Two callers awaiting such requests then take turns, and each ``await``
costs a little more than the call saves (0.85x-0.87x sync for a 25 us MLP, the bare-coroutine floor 0.95x). Where
the engine runs several requests in one call for less than one call each (``Engine.request_batch_limit`` > 1:
a model that stacks on axis 0, the interpreter's batched graphs), a request made while other callers are active
first joins this loop's *gathering* and gives the loop one turn; the requests the other callers make meanwhile
join too. The first to resume *leads*: if the scheduler lets it run on the awaiting thread, it takes the others
(up to the limit, with input shapes equal to its own, in order) and runs them all in one batch call; each
rider then finds its result when it resumes. A leader the scheduler sends to a worker takes nobody: the others
go their own way (the worker coalesces whatever queues up behind it).

Only where many callers are active: the requests of one task, one after the other, cannot be batched, and the
turn is pure cost; and a batch of two gains nothing on a tiny model (measured: 11.3 us per request stacked by
two on onnxruntime against 11.0 us alone, 25.7 against 29.5 us on torch), while the turn and the bookkeeping cost
~12 us a request (two closed-loop callers fell from 0.85x to 0.47x sync on onnxruntime). "Many" is: at least
``MIN_CALLERS`` distinct tasks made requests in the last window of ``WINDOW`` requests (a burst made with
``asyncio.gather``: every request its own task). Not thread-safe by itself: the scheduler's lock guards it.
"""

from __future__ import annotations

import asyncio
from typing import Any

# requests per window over which distinct callers are counted, and the count from which requests gather
WINDOW = 32
MIN_CALLERS = 4
# gather checks between reads of the engine's batch limit (it changes only when a model refuses a stack)
LIMIT_REFRESH = 256

WAITING, TAKEN, DONE = "waiting", "taken", "done"


class Slot:
    """One request in a gathering: its feeds, then its result or error once a leader ran it."""

    __slots__ = ("exc", "feeds", "loop", "result", "state")

    def __init__(self, feeds: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.feeds = feeds
        self.loop = loop
        self.state = WAITING
        self.result: Any = None
        self.exc: BaseException | None = None


class Gathering:
    """Per event loop, the requests waiting for a leader; and whether requests should gather at all."""

    def __init__(self) -> None:
        self._waiting: dict[asyncio.AbstractEventLoop, list[Slot]] = {}
        self._tasks: set[int] = set()  # the tasks that made requests in this window
        self._seen = 0  # requests in this window
        self._callers = 0  # distinct tasks in the last full window
        self.limit = 1  # the engine's batch limit as last read
        self._limit_age = LIMIT_REFRESH
        self.batches = 0  # batch calls led so far (introspection, tests)

    def wanted(self, limit: Any) -> int:
        """The batch limit if this request should gather (several callers active), else 0.

        ``limit``: the engine's ``request_batch_limit`` (called at most every ``LIMIT_REFRESH`` checks).
        """
        self._tasks.add(id(asyncio.current_task()))
        self._seen += 1
        if self._seen >= WINDOW:
            self._callers = len(self._tasks)
            self._tasks.clear()
            self._seen = 0
        if max(self._callers, len(self._tasks)) < MIN_CALLERS:
            return 0
        self._limit_age += 1
        if self._limit_age >= LIMIT_REFRESH:
            self._limit_age = 0
            self.limit = int(limit())
        return self.limit if self.limit > 1 else 0

    def join(self, feeds: Any, loop: asyncio.AbstractEventLoop) -> Slot:
        slot = Slot(feeds, loop)
        self._waiting.setdefault(loop, []).append(slot)
        return slot

    def leave(self, slot: Slot) -> None:
        """``slot`` leads, or was cancelled before anyone took it: out of its loop's list."""
        waiting = self._waiting.get(slot.loop)
        if waiting is not None and slot in waiting:
            waiting.remove(slot)
            if not waiting:
                del self._waiting[slot.loop]

    def take(self, loop: asyncio.AbstractEventLoop, shapes: Any, count: int, shape_of: Any) -> list[Slot]:
        """Up to ``count`` waiting slots of ``loop``, oldest first, while their shapes equal ``shapes``."""
        waiting = self._waiting.get(loop)
        if not waiting or count <= 0:
            return []
        taken: list[Slot] = []
        while waiting and len(taken) < count and shape_of(waiting[0].feeds) == shapes:
            slot = waiting.pop(0)
            slot.state = TAKEN
            taken.append(slot)
        if not waiting:
            del self._waiting[loop]
        if taken:
            self.batches += 1
        return taken
