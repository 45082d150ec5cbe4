"""Calibration / held-out split of the samples, and the time each search stage took."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from devicefit.errors import InputError


def split_samples(n: int, holdout: float, seed: int) -> tuple[list[int], list[int]]:
    """(calibration indices, held-out indices) of ``n`` samples: a seeded shuffle, ``holdout`` of them held
    out (at least one each when ``n >= 2`` and ``holdout > 0``)."""
    if n == 0:
        return [], []
    held = round(n * holdout)
    if holdout > 0 and n >= 2:
        held = max(held, 1)
    held = min(held, n - 1)
    order = np.random.default_rng(seed).permutation(n).tolist()
    return sorted(order[held:]), sorted(order[:held])


def pick_labels(labels: np.ndarray | None, n: int, idx: list[int]) -> np.ndarray | None:
    """The label rows of samples ``idx`` out of ``n`` (a sample with a batch axis owns several rows)."""
    if labels is None:
        return None
    arr = np.asarray(labels)
    per = len(arr) // max(n, 1)
    if per * n != len(arr):
        raise InputError(f"{len(arr)} labels do not divide into {n} samples")
    return arr.reshape(n, per, *arr.shape[1:])[idx].reshape(-1, *arr.shape[1:])


class StageTimer:
    """Forwards progress and adds up the wall time of each stage (a stage runs until the next one starts)."""

    def __init__(self, progress: Callable[[str, int, int], None] | None):
        self.progress = progress
        self.timings: dict[str, float] = {}
        self._stage = ""
        self._since = time.perf_counter()

    def report(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage:
            now = time.perf_counter()
            if self._stage:
                self.timings[self._stage] = self.timings.get(self._stage, 0.0) + now - self._since
            self._stage, self._since = stage, now
        if self.progress is not None:
            self.progress(stage, done, total)
