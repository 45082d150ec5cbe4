"""``profile``'s throughput loop keeps no outputs: it held every one of ``--requests`` results in a list, so a
large request count grew memory without bound."""

from __future__ import annotations

import weakref

import numpy as np

from devicefit.engines.base import Engine, InputSpec
from devicefit.profile.harness import _throughput
from devicefit.runtime import Model


class Counting(Engine):
    """Counts its outputs still alive (each is a fresh array)."""

    name = "counting"

    def __init__(self) -> None:
        super().__init__(None, cache=False)
        self.live = 0
        self.most_live = 0

    def _load(self) -> None:
        self.inputs = [InputSpec("x", "float", (1, 4))]
        self.output_names = ["y"]

    def _gone(self) -> None:
        self.live -= 1

    def _predict(self, feeds):
        y = np.array(feeds["x"], copy=True)
        self.live += 1
        self.most_live = max(self.most_live, self.live)
        weakref.finalize(y, self._gone)
        return {"y": y}


def test_the_throughput_loop_does_not_keep_outputs():
    engine = Counting()
    with Model(engine, max_in_flight=1) as handle:
        _throughput(handle, {"x": np.zeros((1, 4), np.float32)}, [], 1, 200)
    assert engine.most_live <= 4, engine.most_live
