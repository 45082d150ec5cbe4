"""profile's predict_batch rows measure throughput, not an engine building its batched form on first use."""

from __future__ import annotations

import numpy as np
import pytest

from devicefit.engines.base import Engine, InputSpec
from devicefit.profile import harness
from devicefit.runtime import Model


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


class BuildsOnSecondUse(Engine):
    """A batch of a new size costs 1 s the first two times (the build), 1 ms each after (on a fake clock)."""

    name = "builds"

    def __init__(self, clock: Clock) -> None:
        super().__init__(None, cache=False)
        self.clock = clock
        self.seen: dict[int, int] = {}

    def _load(self) -> None:
        self.inputs = [InputSpec("x", "float", (1, 2))]
        self.output_names = ["y"]

    def _predict(self, feeds):
        return {"y": feeds["x"] * 2}

    def predict_batch_validated(self, batch):
        k = len(batch)
        self.seen[k] = self.seen.get(k, 0) + 1
        self.clock.now += 1.0 if self.seen[k] <= 2 else 1e-3
        return [self._predict(f) for f in batch]


def test_batch_rows_leave_out_the_batched_forms_build(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(harness.time, "perf_counter", clock)
    handle = Model(BuildsOnSecondUse(clock))
    feeds = {"x": np.ones((1, 2), np.float32)}
    points = harness._throughput(handle, feeds, [4], max_in_flight=1, n=8)
    row = next(p for p in points if p.mode == "batch")
    assert row.seconds == pytest.approx(
        2 * 1e-3
    )  # two timed batches of 4 at 1 ms; before: the 2 s of builds were in it
