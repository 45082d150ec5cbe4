"""What a request is while the scheduler holds it, what can happen to it, and how its caller is told."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


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


# an inline call: (its start's number, whether nothing else ran when it started, when it started, whether it ran on
# the caller lane: beside a worker's call)
_Ticket = tuple[int, bool, float, bool]


class _Request:
    """One request's life: new -> waiting (for admission) -> queued -> running -> done.

    ``outcome`` is the Accounting field it was counted in once done, so a caller's late cancellation can move it.
    The timing fields feed the inline policy: ``probe`` runs alone; ``epoch`` / ``alone`` tell whether another call
    overlapped it; ``ready`` is when it could start on a worker, ``dispatch_s`` how long a worker took to start it,
    ``ended`` when its call returned (its future is resolved on the loop some time later: the return handoff).
    """

    # NOTE: class-level defaults, no __slots__: a request is built on every predict_async (inline ones
    # included), and setting only what differs is a third of the cost of filling every slot
    admit: asyncio.Future | None = None
    alone = False
    cancel_requested = False
    cold = False  # the first request a new worker thread ran: its dispatch included starting the thread
    queued_behind = False  # others were still queued when it started: part of a backlog, not a lone handoff
    waited_for_worker = False  # ready while a worker's call ran, taken by that worker at its end: no handoff
    dispatch_s: float | None = None
    ended: float | None = None
    epoch = 0
    batch_epoch = -1  # the scheduler's batch starts when it started, -1 if a batch ran then (a crowded call)
    inline_runs = 0  # the scheduler's inline-run count when it started (did one run beside it?)
    outcome = ""
    probe = False
    ready: float | None = None
    riders: list[
        _Request
    ] = []  # queued requests this one's worker runs with it in one batch call (never mutated)
    started = 0.0
    state = "new"

    def __init__(
        self, feeds: Any, future: asyncio.Future | None, loop: asyncio.AbstractEventLoop | None
    ) -> None:
        self.feeds = feeds
        self.future = future
        self.loop = loop


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


Outcome = tuple[Any, BaseException | None]  # a request's result, or the error it failed with


def run_as_batch(
    run_batch: Callable[[list[Any]], list[Any]],
    run: Callable[[Any], Any],
    feeds: Sequence[Any],
    catch: type[BaseException] = BaseException,
) -> tuple[list[Outcome], bool]:
    """Run requests in one batch call (True); if it fails or returns a wrong count, each alone (False).

    A failed batch is rerun one request at a time so that a failure is its own request's: its batch mates still
    complete. ``catch``: the errors a call may fail with (a worker thread catches everything; the awaiting
    thread lets KeyboardInterrupt and the like through).
    """
    try:
        results = run_batch(list(feeds))
        if len(results) == len(feeds):
            return [(r, None) for r in results], True
    except catch:  # rerun one by one below: a failing request gets its own error
        pass
    return run_each(run, feeds, catch), False


def run_each(
    run: Callable[[Any], Any], feeds: Sequence[Any], catch: type[BaseException] = BaseException
) -> list[Outcome]:
    """Run requests one call each; a failure is its own request's outcome."""
    outcomes: list[Outcome] = []
    for f in feeds:
        try:
            outcomes.append((run(f), None))
        except catch as e:
            outcomes.append((None, e))
    return outcomes
