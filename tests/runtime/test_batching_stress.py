"""Gathering and coalescing under fire: every request gets its own result, and the accounting stays exact.

test_lifecycle_stress.py drives an engine that takes one request per call, so the batch paths (a gathering's leader
running others' requests with its own on the awaiting thread, a worker coalescing queued requests into one call)
were never under cancellation, failing requests and unload / load cycles. Here the engine stacks requests on axis
0, gathering is forced on, and every completed request is checked against its own input: a result handed to the
wrong caller, lost, or given twice fails the round.
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
from devicefit.runtime.gather import Gathering
from tests.runtime._stress import assert_exact_accounting, cycler

ROUNDS = int(os.environ.get("DEVICEFIT_STRESS_ROUNDS", "3"))
MAX_IN_FLIGHT = 2


class StackingEngine(Engine):
    """``y = 2 x`` over any number of stacked rows; a row whose second value is negative fails the call."""

    name = "stacking"

    def __init__(self) -> None:
        super().__init__(None, cache=False)
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.rows_per_call: list[int] = []

    def _load(self) -> None:
        self.inputs = [InputSpec("x", "float", (None, 2))]
        self.output_names = ["y"]

    def _unload(self) -> None:
        pass

    def _predict(self, feeds):
        x = feeds["x"]
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.rows_per_call.append(x.shape[0])
        try:
            time.sleep(random.random() * 0.0003)
            if (x[:, 1] < 0).any():
                raise RuntimeError("engine failure on purpose")
            return {"y": x * 2}
        finally:
            with self.lock:
                self.active -= 1


def _client(model: Model, n: int, seed: int, outcomes: list[str]) -> None:
    rng = random.Random(seed)
    entered = [False] * n

    def feeds(i: int) -> dict:
        return {"x": np.array([[seed * 1000 + i, -1.0 if i % 13 == 0 else 1.0]], np.float32)}

    async def one(i: int):
        if rng.random() < 0.5:
            await asyncio.sleep(rng.random() * 0.02)  # half arrive in bursts, half spread out
        entered[i] = True
        return await model.predict_async(feeds(i))

    async def main():
        tasks = [asyncio.ensure_future(one(i)) for i in range(n)]
        for t in tasks:
            if rng.random() < 0.15:
                await asyncio.sleep(rng.random() * 0.001)
                t.cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    for i, (was_entered, r) in enumerate(zip(entered, asyncio.run(main()))):
        if not was_entered:
            outcomes.append("never called")
        elif isinstance(r, dict):
            want = feeds(i)["x"] * 2
            ok = r["y"].shape == want.shape and np.array_equal(r["y"], want)
            outcomes.append("completed" if ok else f"unexpected result {r['y'].tolist()} for {want.tolist()}")
        elif isinstance(r, asyncio.CancelledError):
            outcomes.append("cancelled")
        elif isinstance(r, Dropped):
            outcomes.append("dropped")
        elif isinstance(r, PredictionError):
            outcomes.append("failed" if i % 13 == 0 else f"unexpected failure of a good request: {r}")
        else:
            outcomes.append(f"unexpected {type(r).__name__}: {r}")


@pytest.mark.parametrize("overflow", ["wait", "drop_oldest"])
@pytest.mark.parametrize("round_", range(ROUNDS))
def test_gathered_and_coalesced_requests_each_get_their_own_result(
    round_, overflow, monkeypatch, fast_thread_switches
):
    # gather whenever the engine can batch (the measured decision is tested elsewhere; here every path runs)
    monkeypatch.setattr(Gathering, "wanted", lambda self, limit, call_s, task=None: int(limit()))
    engine = StackingEngine()
    model = Model(engine, max_in_flight=MAX_IN_FLIGHT, overflow=overflow)
    outcomes: list[str] = []
    errors: list[str] = []
    per_client = 80
    threads = [
        threading.Thread(target=_client, args=(model, per_client, round_ * 10 + k + 1, outcomes))
        for k in range(3)
    ]
    threads.append(threading.Thread(target=cycler, args=(model, 3, round_, errors, 0.015)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "a client hung"
    model.unload()

    assert errors == []
    assert_exact_accounting(model, outcomes, 3 * per_client)
    assert engine.max_active <= MAX_IN_FLIGHT
    if len(engine.rows_per_call) >= 60:  # (a round whose unloads dropped most requests may batch nothing)
        assert max(engine.rows_per_call) > 1  # batches ran: the paths under test were taken
