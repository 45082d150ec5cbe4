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

Only where it pays, measured:

* several callers must be active: the requests of one task, one after the other, cannot be batched, and the turn
  is pure cost. Callers = the distinct tasks among the last ``WINDOW`` requests (a burst made with
  ``asyncio.gather``: every request its own task; two closed-loop callers: 2). A sliding window of 8: with a
  tumbling window of 32, two closed-loop callers right after a burst gathered for up to 32 requests as if the
  burst's callers were still there (0.71x sync against 0.85x without gathering, in the benchmark's blocks);
* a batch of the size those callers make (``k`` = callers, at most the limit) must cost less per request than a
  call alone, by more than the turn: ``batch(k) / k + turn < c``. A batch of two gains nothing on a tiny
  model (11.3 us per request stacked by two on onnxruntime against 11.0 us alone; 25.7 against 29.5 us on
  torch) while the turn and its bookkeeping cost ~10 us a request (two closed-loop callers fell from 0.85x to
  0.47x sync on onnxruntime when they always gathered); on the interpreter's batched graphs bert_encoder's
  batch of two costs 0.65x two calls, 100 us a request saved. ``batch(k) / k`` is measured
  (:class:`~devicefit.runtime.batch_costs.BatchCosts`, over the batch calls led here); ``c`` the policy's call
  time alone. Unknown or stale: a *trial* of ``TRIAL`` requests gathers to measure it. The turn is measured too
  once both shapes ran (:class:`Cycles`: the gaps between inline completions, alone and gathered), assumed
  (:func:`turn_s`) until then;
* the engine must be ready to run the batch: a gathered run it ran one call each (the interpreter still
  building the size's batched graph) stops gathering for ``BACKOFF`` requests.

A loop's waiting list is only ever touched from that loop's thread (join, leave, take), so none of this takes
the scheduler's lock on the way in; the window and the estimates are hints (several loops on several threads
may race on a count, never on a request).
"""

from __future__ import annotations

import asyncio
from collections import deque
from statistics import median
from typing import Any

from devicefit.runtime.batch_costs import BatchCosts, size_class

# requests over which distinct callers are counted (sliding)
WINDOW = 8
# what gathering costs a request beyond running inline, net: its own part (one await, the slot, its share of the
# leader's bookkeeping) and the loop pass its turn takes, shared by the callers whose requests wait in that pass,
# less the inline path's own bookkeeping outside the measured call (the lock, the route, the accounting), which a
# rider skips. Measured on 2 vCPUs, onnxruntime's 11 us MLP, forced on and off in the same run: a 400-request
# asyncio.gather ran at 0.77x sync gathered (batches at 5.6 us a request, begin to end as a call is measured)
# against 0.59x one call at a time, a net turn of about nothing. A fixed 15 us (two callers' cost, from an older
# measurement, with margin) kept such bursts from ever gathering. An await alone costs 2.4 us a task with 2 tasks a
# loop pass, 1.5-1.7 us with 8 and more.
TURN_TASK_S = 1e-6
TURN_PASS_S = 8e-6


def turn_s(callers: int) -> float:
    """What gathering costs a request with ``callers`` callers sharing each loop pass, as assumed before it is
    measured (:meth:`Cycles.turn`)."""
    return TURN_TASK_S + TURN_PASS_S / max(1, callers)


# inline completions per estimate of a request's whole cycle (sliding; the median of them)
CYCLES = 9


class Cycles:
    """What a request costs the awaiting thread from one inline completion to the next, alone and gathered;
    from these, what gathering's turn costs a request, measured instead of assumed (:func:`turn_s`).

    A request run inline costs its thread the call ``c`` plus its own path ``P`` (feeds, admission, the caller's
    code between requests): the gap between two inline completions in a row is ``P + c``. A gathered batch of
    ``k`` completes ``k`` requests, each of which paid ``P``, gathering's turn and its share of the batch: the
    gap before it, over ``k``, is ``P + turn + batch(k) / k``. So ``turn = gathered - batch(k) / k - (alone -
    c)``. Two closed-loop callers of a 40 us MLP on 2 vCPUs: the turn assumed 5 us a request, measured ~11 us
    (the pairs ran at 0.38x-0.70x sync against 0.61x-0.95x not gathered). Medians of the last ``CYCLES`` gaps: a
    gap that spans a pause of the caller's own (it awaited something else) is an outlier the median leaves out.
    """

    __slots__ = ("_alone", "_at", "_gathered", "_last")

    def __init__(self) -> None:
        self._at = 0.0  # the clock at the last inline completion
        self._last = 0  # how many requests it completed (0: none yet, or one that is no sample's start)
        self._alone: deque[float] = deque(maxlen=CYCLES)
        self._gathered: dict[int, deque[float]] = {}  # per batch size class (batch_costs.size_class)

    def note(self, now: float, size: int) -> None:
        """An inline call completed ``size`` requests (1: alone, else a gathered batch) at ``now``; 0: it
        completed some, but as calls one by one (no sample of either, nor the start of one)."""
        gap = now - self._at
        self._at = now
        last, self._last = self._last, size
        if not last:
            return
        if size == 1:
            if last == 1:  # two requests alone in a row: one request's whole cycle between them
                self._alone.append(gap)
        elif size > 1:
            key = size_class(size)
            samples = self._gathered.get(key)
            if samples is None:
                samples = self._gathered[key] = deque(maxlen=CYCLES)
            samples.append(gap / size)

    def turn(self, size: int, batch_s: float | None, call_s: float, callers: int) -> float:
        """Gathering's own cost a request in batches of ``size`` (``batch_s`` a request, ``call_s`` a call
        alone), as measured; :func:`turn_s` while either cycle is not measured enough yet."""
        gathered = self._gathered.get(size_class(size))
        if batch_s is None or gathered is None or len(gathered) < 3 or len(self._alone) < 3:
            return turn_s(callers)
        return max(0.0, median(gathered) - batch_s - (median(self._alone) - call_s))


# requests that gather, whatever the estimate, to measure a size class that is unknown or stale
TRIAL = 8
# gather checks between reads of the engine's batch limit (it changes only when a model refuses a stack)
LIMIT_REFRESH = 256
# requests that reuse a no without asking the estimate again, while no more callers are counted than it saw (two
# closed-loop callers on a tiny model are told no on every request); more callers (a burst) ask again at once. A
# yes likewise, while at least as many callers are counted (each request of a burst asked: 2.3 us a request, a
# fifth of an 11 us call)
QUIET = 16
# requests that do not gather after a gathered run the engine ran one call each (it was still preparing the batch:
# the interpreter builds a size's graph on a background thread, 0.05-0.7 s, longer while the loop's inline calls
# hold the GIL); then one gathers again to see. Two closed-loop callers of a tiny MLP otherwise gathered on every
# request while it was built (the size's cost is never measured meanwhile: a trial on every decision), a loop
# turn each for nothing: 0.26x-0.39x sync in those rounds
BACKOFF = 64

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
        self._recent: deque[int] = deque()  # the tasks of the last WINDOW requests
        self._counts: dict[int, int] = {}  # of each, how many of those requests
        # the task of the last request (its id), and how many requests in a row it made: WINDOW and more, it is the
        # only caller in the window (CallerSide.gather_join reads these first: a lone caller's requests stop there)
        self.streak_task = 0
        self.streak = 0
        self.limit = 1  # the engine's batch limit as last read
        self._limit_age = LIMIT_REFRESH
        self.batches = 0  # batch calls led so far (introspection, tests)
        self.costs = BatchCosts()  # of the batch calls led here
        self.cycles = Cycles()  # of the inline completions here: what the turn costs, measured
        self._trial = 0  # requests left in the current trial
        self._quiet = 0  # requests left that reuse the last no (with no more callers than it saw)
        self._no_for = 0  # the callers that no was for
        self._yes = 0  # likewise, requests left that reuse the last yes (with at least as many callers)
        self._yes_for = 0

    def wanted(self, limit: Any, call_s: float | None, task: int | None = None) -> int:
        """The batch limit if this request should gather, else 0 (see the module's doc).

        ``limit``: the engine's ``request_batch_limit`` (called at most every ``LIMIT_REFRESH`` checks);
        ``call_s``: the engine call alone (the inline policy's ``call_s``; None: not measured, no gathering);
        ``task``: the id of the request's task (default: the current task's).
        """
        if task is None:
            task = id(asyncio.current_task())
        # NOTE: a task that made the last WINDOW requests is the window's only caller: the window would not change
        # (one task in, the same task out), so it is left as it is (two closed-loop callers on a tiny model each
        # run ~40 requests inline between loop turns: the window's bookkeeping was a quarter of ours per request)
        if task == self.streak_task:
            if self.streak >= WINDOW:
                return 0
            self.streak += 1
        else:
            self.streak_task, self.streak = task, 1
        recent, counts = self._recent, self._counts
        recent.append(task)
        counts[task] = counts.get(task, 0) + 1  # (a plain dict: Counter's missing-key hook is a Python call)
        # NOTE: several loops on several threads share this window without a lock (hints): another thread may
        # have taken the oldest entry or its count between these lines (a KeyError reached a caller of the
        # lifecycle stress test), so a missing one is skipped, never raised
        while len(recent) > WINDOW:
            try:
                old = recent.popleft()
            except IndexError:
                break
            left = counts.get(old, 0) - 1
            if left > 0:
                counts[old] = left
            else:
                counts.pop(old, None)
        callers = len(counts)
        if callers < 2 or call_s is None:
            return 0
        if self._quiet:
            self._quiet -= 1
            if callers <= self._no_for:
                return 0  # no more callers than when the estimate said no: still no
        self._limit_age += 1
        if self._limit_age >= LIMIT_REFRESH:
            self._limit_age = 0
            self.limit = int(limit())
        if self.limit <= 1:
            return 0
        if self._trial:
            self._trial -= 1
            return self.limit
        if self._yes:
            self._yes -= 1
            if callers >= self._yes_for:
                return self.limit  # at least as many callers as when the estimate said yes: still yes
        size = min(callers, self.limit)
        turn = self.cycles.turn(size, self.costs.estimate(size), call_s, callers)
        verdict = self.costs.decide(size, call_s, turn)
        if verdict == "measure":
            self._trial = TRIAL - 1  # the next requests gather too, so batches form to be measured
        if verdict == "no":
            self._quiet, self._no_for, self._yes = QUIET, callers, 0
            return 0
        self._quiet = 0
        if verdict == "yes":
            self._yes, self._yes_for = QUIET, callers
        return self.limit

    def unbatched(self) -> None:
        """A gathered run came back run one call each (the engine still prepares the batch): the next
        ``BACKOFF`` requests do not gather, whatever the callers (then one trial looks again)."""
        self._quiet, self._no_for, self._yes, self._trial = BACKOFF, 1 << 30, 0, 0

    def crowded(self) -> bool:
        """Whether requests wait in a gathering now (a burst is being run; a hint, read without the lock)."""
        return bool(self._waiting)

    def record(self, size: int, seconds: float) -> None:
        """A batch call of ``size`` requests led here took ``seconds``."""
        self.costs.record(size, seconds)

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
