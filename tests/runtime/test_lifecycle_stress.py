"""The handle's lifecycle under fire: submit / cancel / load / unload / sync predict from several threads at once.

Each round asserts what must hold whatever the interleaving: every ``predict_async`` call is accounted for exactly
once (``submitted == completed + failed + cancelled + dropped + rejected`` and ``submitted`` == the number of calls),
each caller's outcome matches the counts, the engine never runs more than ``max_in_flight`` async calls at once,
an engine call never overlaps an unload, and no worker thread survives ``unload()``.

The default suite runs a few rounds; ``DEVICEFIT_STRESS_ROUNDS=100`` runs it 100 times in a row (the issue's bar):
``DEVICEFIT_STRESS_ROUNDS=100 pytest -q -n 0 tests/runtime/test_lifecycle_stress.py``.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time

import numpy as np
import pytest

from devicefit.engines.base import Engine, InputSpec
from devicefit.runtime import Dropped, Model, PredictionError
from tests.runtime._stress import assert_exact_accounting, cycler

ROUNDS = int(os.environ.get("DEVICEFIT_STRESS_ROUNDS", "3"))
MAX_IN_FLIGHT = 2


class CountingEngine(Engine):
    """Records the most concurrent async calls and whether any call ran while the engine was unloading."""

    name = "counting"

    def __init__(self) -> None:
        super().__init__(None, cache=False)
        self.lock = threading.Lock()
        self.active = 0
        self.active_async = 0
        self.max_active_async = 0
        self.unloading = False
        self.overlapped_unload = False
        self.weights: object | None = None

    def _load(self) -> None:
        self.inputs = [InputSpec("x", "float", (1, 2))]
        self.output_names = ["y"]
        self.weights = object()

    def _unload(self) -> None:
        with self.lock:
            self.unloading = True
            busy = self.active
        time.sleep(0.0005)
        with self.lock:
            self.overlapped_unload |= busy > 0 or self.active > 0
            self.unloading = False
        self.weights = None

    def _predict(self, feeds):
        with self.lock:
            if self.weights is None or self.unloading:
                self.overlapped_unload = True
            self.active += 1
            is_async = feeds["x"][0, 1] != 2.0  # the synchronous client marks its requests with 2
            self.active_async += is_async
            self.max_active_async = max(self.max_active_async, self.active_async)
        try:
            time.sleep(random.random() * 0.0004)
            if feeds["x"][0, 1] < 0:
                raise RuntimeError("engine failure on purpose")
            return {"y": feeds["x"] * 2}
        finally:
            with self.lock:
                self.active -= 1
                self.active_async -= is_async


def _async_client(model: Model, n: int, seed: int, outcomes: list[str]) -> None:
    rng = random.Random(seed)
    entered = [False] * n

    async def one(i: int):
        await asyncio.sleep(rng.random() * 0.04)  # spread over the load / unload cycles
        entered[i] = True  # predict_async runs synchronously up to its first await from here
        return await model.predict_async({"x": np.array([[i, -1.0 if i % 17 == 0 else 1.0]], np.float32)})

    async def main():
        tasks = [asyncio.ensure_future(one(i)) for i in range(n)]
        for t in tasks:
            if rng.random() < 0.15:
                await asyncio.sleep(rng.random() * 0.002)
                t.cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    for was_entered, r in zip(entered, asyncio.run(main())):
        if not was_entered:
            outcomes.append("never called")  # cancelled before it reached predict_async
        elif isinstance(r, dict):
            outcomes.append("completed")
        elif isinstance(r, asyncio.CancelledError):
            outcomes.append("cancelled")
        elif isinstance(r, Dropped):
            outcomes.append("dropped")
        elif isinstance(r, PredictionError):
            outcomes.append("failed")
        else:
            outcomes.append(f"unexpected {type(r).__name__}: {r}")


def _sync_client(model: Model, n: int, errors: list[str]) -> None:
    for i in range(n):
        try:
            model.predict({"x": np.array([[i, 2.0]], np.float32)})
        except Dropped:
            pass  # it met an unload in progress: the documented outcome
        except Exception as e:  # anything else is a lifecycle bug
            errors.append(f"{type(e).__name__}: {e}")


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("devicefit-") and t.is_alive()]


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_lifecycle_stress(round_, fast_thread_switches):
    engine = CountingEngine()
    model = Model(engine, max_in_flight=MAX_IN_FLIGHT)
    outcomes: list[str] = []
    errors: list[str] = []
    per_client = 60
    threads = [
        threading.Thread(target=_async_client, args=(model, per_client, round_ * 10 + k, outcomes))
        for k in range(3)
    ]
    threads += [
        threading.Thread(target=_sync_client, args=(model, 30, errors)),
        threading.Thread(target=cycler, args=(model, 4, round_, errors)),
        threading.Thread(target=cycler, args=(model, 4, round_ + 1000, errors)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "a client hung"
    model.unload()

    assert errors == []
    assert_exact_accounting(model, outcomes, 3 * per_client)
    assert engine.max_active_async <= MAX_IN_FLIGHT
    assert model.stats.peak_in_flight <= MAX_IN_FLIGHT
    assert not engine.overlapped_unload
    assert not _workers()
    assert not model.loaded


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_lifecycle_stress_with_every_request_arriving_first(round_, fast_thread_switches, monkeypatch):
    """The same, with every request yielding in ``arrive()`` before its route (the burst path, scheduler.py):
    cancellations and unloads that land during that yield must keep the accounting exact and hang nothing."""
    from devicefit.runtime.inline_policy import InlinePolicy
    from devicefit.runtime.scheduler import InFlightScheduler

    monkeypatch.setattr(InlinePolicy, "holds_back_for_backlog", property(lambda self: True))
    arrivals = [0]
    arrive = InFlightScheduler.arrive

    async def counted(self: InFlightScheduler) -> None:
        arrivals[0] += 1
        await arrive(self)

    monkeypatch.setattr(InFlightScheduler, "arrive", counted)
    test_lifecycle_stress(round_, None)
    assert arrivals[0] > 0
