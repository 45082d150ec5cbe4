"""The model handle: lazy load, predict / predict_batch / predict_async with bounded concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from devicefit.engines import Engine, create, validate_feeds
from devicefit.errors import DevicefitError, InputError, ModelLoadError, first_line
from devicefit.runtime._requests import _Ticket, run_as_batch, run_each
from devicefit.runtime.gather import DONE, Slot
from devicefit.runtime.scheduler import OVERFLOW_POLICIES, Accounting, Dropped, InFlightScheduler
from devicefit.runtime.stream import StreamResult, stream

# The handle's lifecycle: one state, changed only under Model._lock.
#   closed --load()--> loading --ok--> ready --unload()--> closing --> closed
#                        `--load failed--> closed
# Requests are admitted only in ready; async submits during closing end as Dropped, synchronous calls too.
CLOSED, LOADING, READY, CLOSING = "closed", "loading", "ready", "closing"
# The longest engine call an async request may run on the awaiting thread, blocking its event loop; whether a call
# shorter than this runs there is decided from measurements (devicefit.runtime.inline_policy).
INLINE_BELOW_S = 1e-3


class PredictionError(RuntimeError):
    """An engine failed on one request (the handle stays usable)."""


class Model:
    """A loaded-on-demand model behind one engine.

    Args:
        model: a ``.mlpackage`` / ``.mlmodel`` / ``.onnx`` / TorchScript path, an ``nn.Module``, an MLModel,
            or an :class:`~devicefit.engines.Engine` instance (used as is).
        engine: ``"auto"``, ``"torch"``, ``"interp"``, ``"onnxruntime"`` or ``"coreml"``.
        compute_units: ``"all"``, ``"cpu_only"``, ``"cpu_and_gpu"`` or ``"cpu_and_ne"``.
        precision: ``"fp32"`` or ``"fp16"``.
        max_in_flight: concurrent engine calls for :meth:`predict_async`.
        overflow: ``"wait"``, ``"drop_oldest"`` or ``"reject"`` (see :mod:`devicefit.runtime.scheduler`).
        max_queue: requests that may wait for a slot (default: unbounded for wait, ``max_in_flight`` for
            drop_oldest, 0 for reject).
        cache: a SpecializationCache, None for the default one, False for none.
        inline_below_s: async requests may run on the awaiting thread instead of a worker when their engine
            calls take less than this many seconds (uncontended) *and* the workers are measured to be no faster
            (the call on a worker plus the handoff, against the call alone: :mod:`devicefit.runtime.inline_policy`);
            such a call blocks the event loop while it runs. None: always a worker.
        max_batch: the most async requests one engine call may take when requests pile up (coalescing on a
            worker, gathering on the awaiting thread: :mod:`devicefit.runtime.gather`). None: as many as the
            engine says help (``Engine.request_batch_limit``: 16 for models that stack on axis 0 and for the
            interpreter's batched graphs, 1 otherwise); 1: one engine call per request. A coalesced request's
            result equals its own call's within the engine's batch tolerance (stacking changes the order of
            sums: ulp-level, as :meth:`predict_batch`).
        **engine_options: passed to the engine (``example_inputs``, ``function``, ``threads``...).
    """

    # what the async scheduler times engine calls and handoffs with (tests replace it with a fake clock)
    _clock: Callable[[], float] = staticmethod(time.perf_counter)

    def __init__(
        self,
        model: Any,
        engine: str = "auto",
        compute_units: str = "all",
        precision: str = "fp32",
        max_in_flight: int = 1,
        overflow: str = "wait",
        max_queue: int | None = None,
        cache: Any = None,
        inline_below_s: float | None = INLINE_BELOW_S,
        max_batch: int | None = None,
        **engine_options: Any,
    ) -> None:
        if overflow not in OVERFLOW_POLICIES:
            raise InputError(f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}, got {overflow!r}")
        if not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise InputError(f"max_in_flight must be a positive integer, got {max_in_flight!r}")
        if overflow == "drop_oldest" and max_queue is not None and max_queue < 1:
            raise InputError(
                "overflow='drop_oldest' needs max_queue >= 1: only waiting requests can be dropped"
            )
        if max_batch is not None and (not isinstance(max_batch, int) or max_batch < 1):
            raise InputError(f"max_batch must be a positive integer or None, got {max_batch!r}")
        if isinstance(model, (str, os.PathLike)) and not os.path.lexists(model):
            # NOTE: loading is lazy, but a path that is not there fails now: a typo in a server's model path
            # would otherwise surface only with the first request
            raise ModelLoadError(
                f"model not found: {os.fspath(model)} (expected a .mlpackage folder, a .mlmodel, .onnx or "
                "TorchScript .pt file)"
            )
        # an Engine instance is used as is (custom engines, instrumented test engines)
        self.engine: Engine = (
            model
            if isinstance(model, Engine)
            else create(
                engine, model, compute_units=compute_units, precision=precision, cache=cache, **engine_options
            )
        )
        self.max_in_flight = max_in_flight
        self.overflow = overflow
        self.max_queue = max_queue
        self.inline_below_s = inline_below_s
        self.max_batch = max_batch
        # One lock for the state, the scheduler slot, the accounting and every scheduler's own bookkeeping.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._state = READY if self.engine.loaded else CLOSED
        self._scheduler: InFlightScheduler | None = None
        self._stats = Accounting()  # shared by every scheduler this handle builds, across unloads
        self._active = 0  # engine calls under way (an unload waits for them before unloading the engine)
        # when predict_async last gave the event loop control (inline calls do not: see predict_async)
        self._last_yield = 0.0

    # ------------------------------------------------------------------ lifecycle
    @property
    def engine_name(self) -> str:
        return self.engine.name

    @property
    def loaded(self) -> bool:
        return self.engine.loaded

    @property
    def state(self) -> str:
        """``"closed"``, ``"loading"``, ``"ready"`` or ``"closing"``."""
        with self._lock:
            return self._state

    def load(self) -> Model:
        """Prepare the model now (otherwise the first prediction does). Returns self.

        Waits for a load or unload another thread has under way; a failed load leaves the handle closed.
        """
        with self._cond:
            while self._state in (LOADING, CLOSING):
                self._cond.wait()
            if self._state == READY:
                return self
            self._state = LOADING
        ok = False
        try:
            self.engine.load()
            ok = True
        finally:
            with self._cond:
                self._state = READY if ok else CLOSED
                self._cond.notify_all()
        return self

    def unload(self) -> None:
        """Release the model and the worker threads; queued async requests complete with ``Dropped``.

        Idempotent and exception-safe: whatever fails, the handle ends closed, no worker thread outlives the call,
        and the engine is unloaded only once no engine call is under way.
        """
        with self._cond:
            while self._state in (LOADING, CLOSING):
                self._cond.wait()
            if self._state == CLOSED and not self.engine.loaded:
                return
            self._state = CLOSING
            sched, self._scheduler = self._scheduler, None
        try:
            if sched is not None:
                sched.close()  # outside the lock: its workers take the lock to finish their last call
        finally:
            try:
                with self._cond:
                    while self._active:
                        self._cond.wait()
                self.engine.unload()
            finally:
                with self._cond:
                    self._state = CLOSED
                    self._cond.notify_all()

    def __enter__(self) -> Model:
        return self.load()

    def __exit__(self, *exc: object) -> None:
        self.unload()

    async def __aenter__(self) -> Model:
        await asyncio.to_thread(self.load)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.unload)

    @property
    def inputs(self) -> list[Any]:
        return self.load().engine.inputs

    @property
    def output_names(self) -> list[str]:
        return self.load().engine.output_names

    @property
    def stats(self) -> Accounting:
        """Request accounting for predict_async (across unloads), read under the handle's lock."""
        with self._lock:
            return replace(self._stats)

    # ------------------------------------------------------------------ predict
    def _enter(self) -> None:
        """Wait until ready (loading first when closed) and register one engine call; Dropped while closing."""
        while True:
            with self._cond:
                while self._state == LOADING:
                    self._cond.wait()
                if self._state == READY:
                    self._active += 1
                    return
                if self._state == CLOSING:
                    raise Dropped("the model is being unloaded; load() it again before predicting")
            self.load()

    def _leave(self) -> None:
        with self._cond:
            self._active -= 1
            if not self._active and self._state == CLOSING:  # only unload() waits for engine calls to end
                self._cond.notify_all()

    def _engine_call(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            return self.engine.predict_validated(arrays)
        except DevicefitError:
            raise
        except Exception as e:
            first = first_line(e)
            raise PredictionError(f"engine {self.engine.name!r} failed on this request: {first}") from e

    def _batch_limit(self) -> int:
        limit = self.engine.request_batch_limit()
        return limit if self.max_batch is None else min(limit, self.max_batch)

    def _engine_batch_call(self, batch: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Coalesced async requests in one engine call (the scheduler reruns them one by one if it raises)."""
        return self.engine.predict_batch_validated(batch)

    def predict(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Validate and run one request (thread-safe).

        Raises:
            InputError: bad names / shapes / dtypes.
            Dropped: the model is being unloaded by another thread.
            PredictionError: the engine failed on this request.
        """
        self._enter()
        try:
            return self._engine_call(validate_feeds(self.engine.inputs, feeds))
        finally:
            self._leave()

    def predict_batch(self, batch: Sequence[Mapping[str, Any]]) -> list[dict[str, np.ndarray]]:
        """Run many requests: stacked on axis 0 when the model's batch axis allows it, else one by one."""
        self._enter()
        try:
            arrays = [validate_feeds(self.engine.inputs, f) for f in batch]
            try:
                return self.engine.predict_batch_validated(arrays)
            except DevicefitError:
                raise
            except Exception as e:
                raise PredictionError(
                    f"engine {self.engine.name!r} failed on a batch: {first_line(e)}"
                ) from e
        finally:
            self._leave()

    def _sched_locked(self) -> InFlightScheduler:
        """The scheduler for the current ready period (built on first use; the lock is held)."""
        if self._scheduler is None:
            self._scheduler = InFlightScheduler(
                # NOTE: the engine call itself, no _active count: unload() joins the workers (scheduler.close)
                # before it waits for the other engine calls and unloads the engine (a count took two more lock
                # round trips per worker request, two more waits for the lock and the GIL under a backlog)
                self._engine_call,
                self.max_in_flight,
                self.overflow,
                self.max_queue,
                name=f"devicefit-{self.engine.name}",
                lock=self._lock,
                stats=self._stats,
                inline_below_s=self.inline_below_s,
                clock=self._clock,
                run_batch=None if self.max_batch == 1 else self._engine_batch_call,
                batch_limit=self._batch_limit,
            )
        return self._scheduler

    async def predict_async(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Run one request on a worker thread, at most ``max_in_flight`` at once.

        Every call that passes input validation counts once in :attr:`stats` as submitted and once in the
        outcome it ends with.

        Raises:
            InputError: bad names / shapes / dtypes (before anything is queued).
            Dropped: replaced by a fresher request (``overflow="drop_oldest"``) or the model was unloaded.
            Rejected: the model was at capacity (``overflow="reject"``).
            PredictionError: the engine failed on this request.
        """
        inline: _Ticket | None = None
        slot: Slot | None = None  # this request's place in a gathering (runtime/gather.py)
        riders: list[Slot] = []
        arrays: dict[str, np.ndarray] | None = None
        sched = pending = self._scheduler
        # NOTE: the lone request that the measurements send inline (a tiny model's every request) takes a short
        # path: validated, not gathered, admitted, counted and routed in one critical section of attribute checks
        # (InFlightScheduler.begin_lone_locked), then run here. Anything else (not loaded, a gathering, a burst, a
        # refresh due, a worker busy) goes the general way below, with the validation already done.
        if sched is not None and self._state == READY:  # (hints: re-checked under the lock)
            arrays = validate_feeds(self.engine.inputs, feeds)  # bad input never counts as a request
            slot = sched.gather_join(arrays)
            if slot is None:
                with self._lock:
                    if self._state == READY and sched is self._scheduler:
                        inline = sched.begin_lone_locked()
                        if inline is not None:
                            self._stats.submitted += 1
                            self._active += 1
        if inline is None:
            counted = False
            joined = slot is not None  # a gathering joined above: its turn comes first
            try:
                while True:
                    if arrays is None:  # not validated yet, or a load since
                        state = self._state  # a hint only (re-checked under the lock below)
                        if state == CLOSING:
                            raise Dropped("request dropped: the model is being unloaded")
                        if state != READY:
                            await asyncio.to_thread(self.load)
                        arrays = validate_feeds(self.engine.inputs, feeds)
                        pending = self._scheduler
                        if pending is not None and slot is None and state == READY:
                            slot = pending.gather_join(arrays)
                            joined = slot is not None
                    if joined:
                        joined = False
                        assert pending is not None and slot is not None
                        if await self._gather_turn(pending, slot):
                            counted = True  # and settled: a leader ran it with its own (outcome below)
                            break
                    if pending is not None and slot is None and pending.wants_arrivals():
                        await pending.arrive()  # a burst made together is seen together (scheduler.arrive)
                    with self._lock:
                        if self._state == READY:
                            sched = self._scheduler or self._sched_locked()
                            self._stats.submitted += 1
                            counted = True
                            # NOTE: admitted, counted and registered as an engine call in this one critical
                            # section: a call short enough to run inline is short enough for every lock round
                            # trip to show
                            route, inline = sched.begin_locked()
                            if inline is not None:
                                self._active += 1
                                if slot is not None and sched is pending:  # it leads: the others run with it
                                    riders = sched.gather_riders_locked(slot, arrays)
                                    self._stats.submitted += len(riders)
                            break
                        if self._state == CLOSING:
                            raise Dropped("request dropped: the model is being unloaded")
                    arrays = None  # loading: validated again once loaded
            except InputError:
                raise
            except BaseException as e:
                outcome = (
                    "cancelled"
                    if isinstance(e, asyncio.CancelledError)
                    else "dropped"
                    if isinstance(e, Dropped)
                    else "failed"  # a failed load: the request ends here
                )
                with self._lock:
                    self._stats.submitted += not counted
                    setattr(self._stats, outcome, getattr(self._stats, outcome) + 1)
                raise
            if slot is not None and slot.state == DONE:
                if slot.exc is not None:
                    raise slot.exc
                return slot.result  # type: ignore[no-any-return]
            if inline is None:
                assert sched is not None and arrays is not None
                self._last_yield = self._clock()  # it suspends (a worker runs it)
                return await sched.submit(arrays, counted=True, route=route)
        # on this (the awaiting) thread: the policy measured the call as shorter than a worker handoff
        assert sched is not None and arrays is not None
        failed = True
        batched = True
        try:
            if riders:
                result, batched = self._run_gathered(arrays, riders)
            else:
                result = self._engine_call(arrays)
            failed = False
        finally:
            with self._lock:  # the condition's lock (a plain Lock: cheaper to enter than the Condition)
                sched.end_inline_locked(inline, failed, riders, batched)
                self._active -= 1
                if not self._active and self._state == CLOSING:
                    self._cond.notify_all()
        # NOTE: a request run inline returns without suspending, so a caller awaiting one after another would
        # hold the event loop until it stops (other tasks, callers, timeouts starved: measured, one heartbeat
        # tick in 400 requests). Give the loop control once its thread ran inline calls for as long as one call
        # may block it. After the call, not before: a yield before admission would reorder requests (FIFO,
        # drop_oldest). Cheap: one clock read per request, one loop pass per millisecond or so.
        # The loop also gets its turn at once when a worker's result waits for it: the caller it belongs to then
        # hands the worker its next request before this caller's next one runs here (without it, the awaiting
        # thread ran two requests for each worker request, the worker idle ~0.45 ms of every 1.5 ms cycle).
        now = self._clock()
        if now - self._last_yield >= (self.inline_below_s or 0.0) or sched.results_waiting():
            self._last_yield = now
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:  # completed, but the caller never sees it
                with self._lock:
                    self._stats.completed -= 1
                    self._stats.cancelled += 1
                raise
        return result

    async def _gather_turn(self, sched: InFlightScheduler, slot: Slot) -> bool:
        """Give the loop one turn in a gathering; True if a leader ran this request meanwhile (``slot`` done).

        A request that none took leads: it leaves the gathering and goes on to be routed like any other.
        """
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            with self._lock:
                if slot.state == DONE:  # counted by its leader: the caller never sees that outcome
                    self._stats.completed -= slot.exc is None
                    self._stats.failed -= slot.exc is not None
                    self._stats.submitted -= 1  # counted again, as cancelled, by predict_async
                else:
                    sched.gathering.leave(slot)
            raise
        if slot.state == DONE:
            return True
        with self._lock:
            sched.gathering.leave(slot)
        return False

    def _run_gathered(
        self, arrays: dict[str, np.ndarray], riders: list[Slot]
    ) -> tuple[dict[str, np.ndarray], bool]:
        """This request and the gathered ``riders`` in one batch call; each rider's result or error set on it.
        Returns the leader's result and whether they ran as a batch.

        A failed batch reruns each request alone, so a failure is its own request's (raised for the leader).
        Where the engine would first prepare the batch (the interpreter builds a batched graph, 0.05-0.7 s: the
        event loop stood still that long), it prepares it on another thread and these run one call each.
        """
        feeds = [arrays, *[r.feeds for r in riders]]
        if self.engine.batch_ready(feeds):
            outcomes, batched = run_as_batch(
                self._engine_batch_call, self._engine_call, feeds, catch=Exception
            )
        else:  # being prepared on another thread: one call each meanwhile
            outcomes, batched = run_each(self._engine_call, feeds, catch=Exception), False
        for r, (result, exc) in zip(riders, outcomes[1:]):
            r.result, r.exc, r.state = result, exc, DONE
        result, exc = outcomes[0]
        if exc is not None:
            raise exc
        return result, batched

    async def stream(
        self, frames: AsyncIterable[Mapping[str, Any]] | Iterable[Mapping[str, Any]], keep: int = 1
    ) -> AsyncIterator[StreamResult]:
        """Predict on a live producer (a camera), keeping only the freshest ``keep`` unprocessed frames.

        Frames that arrive while older ones wait are discarded oldest-first, so results never lag behind
        the producer by more than ``keep`` frames plus the one being processed.
        """
        # aclosing: a consumer that stops early must stop the producer task too (stream's finally)
        async with contextlib.aclosing(stream(self, frames, keep)) as results:
            async for result in results:
                yield result

    def new_session(self) -> Any:
        """A generation session (its own KV cache) for :meth:`generate` / :meth:`stream_generate`."""
        from devicefit.runtime.generate import generator_for

        return generator_for(self).new_session()

    def generate(self, prompt_ids: Any, max_new_tokens: int, **options: Any) -> list[int]:
        """Generate token ids with a stateful LM package (see :mod:`devicefit.runtime.generate`)."""
        from devicefit.runtime.generate import generator_for

        return generator_for(self).generate(prompt_ids, max_new_tokens, **options)

    def stream_generate(self, prompt_ids: Any, max_new_tokens: int, **options: Any) -> Any:
        """``async for token in model.stream_generate(ids, n)``: tokens as they are generated."""
        from devicefit.runtime.generate import generator_for

        return generator_for(self).stream_generate(prompt_ids, max_new_tokens, **options)

    def __repr__(self) -> str:
        return f"<devicefit.Model engine={self.engine.name} {'loaded' if self.loaded else 'not loaded'}>"


def load(
    model: Any,
    engine: str = "auto",
    compute_units: str = "all",
    precision: str = "fp32",
    max_in_flight: int = 1,
    overflow: str = "wait",
    **kwargs: Any,
) -> Model:
    """A :class:`Model` handle for ``model`` (prepared lazily, on first use or ``.load()``)."""
    return Model(
        model,
        engine=engine,
        compute_units=compute_units,
        precision=precision,
        max_in_flight=max_in_flight,
        overflow=overflow,
        **kwargs,
    )
