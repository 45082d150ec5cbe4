"""What a batch call costs per request, measured per batch size class, and whether batching pays.

Request coalescing (a worker running queued requests in one call) and gathering (requests on the awaiting thread
run in one call) both assume a batch is cheaper per request than a call each. Often it is: on the interpreter's
batched graphs a 96 px CNN's batch of 16 costs 0.56x sixteen calls, bert_encoder's 0.12x. Not always: the same
CNN at 160 px ran *slower* batched (0.93x per sample: activations fall out of cache), and coalescing it took
async from 1.86x to 1.46x sync on a burst. So the cost is measured, never assumed: the median seconds per
request of the last ``SAMPLES`` batch calls of a size class (2, 3, 4-7, 8 and up), against a single call's.
Unknown, stale (``RETRY`` decisions without a sample) or measured fewer than ``MIN_SAMPLES`` times: batch to
measure it. A batch call that also built its engine's batched form (the interpreter builds a size's graph on its
second use: 0.05-0.7 s) is no sample of its cost: samples more than ``OUTLIER`` times the class's fastest are
left out of the median (one such build read 35 ms a request for a 96 px CNN whose batches cost 0.4 ms, and
turned its coalescing off for good). A batch must beat single calls by a margin (``GAIN``), and the single call
it is judged against is one no batch ran beside (the scheduler drops the others' samples: a 160 px CNN's single
calls read 4.4 ms beside batches, 1.3 ms beside each other, and batches of 3 ms a request looked cheaper).
"""

from __future__ import annotations

from collections import deque
from statistics import median

SAMPLES = 8
# a batch must cost at most this share of the single calls it replaces: every request in it waits for the whole
# batch (latency), and a gain within the noise of two medians (ORT's conv net batched: 0.99x-1.07x per sample)
# flipped the decision from burst to burst
GAIN = 0.9
MIN_SAMPLES = 3
OUTLIER = 4.0
RETRY = 2048


def size_class(k: int) -> int:
    """Batch sizes whose per-request cost is estimated together: 2, 3, 4-7, 8 and up."""
    return k if k < 4 else 4 if k < 8 else 8


class BatchCosts:
    """Per size class, the measured seconds per request of batch calls (not thread-safe: callers lock)."""

    def __init__(self) -> None:
        self._samples: dict[int, deque[float]] = {}
        self._estimate: dict[int, float] = {}  # the medians, kept (a median per request cost ~3 us)
        self._stale: dict[int, int] = {}

    def estimate(self, size: int) -> float | None:
        """Seconds per request of a batch of ``size`` as last measured (None: not yet)."""
        return self._estimate.get(size_class(size))

    def decide(self, size: int, single_s: float | None, extra_s: float = 0.0) -> str:
        """``"yes"`` if a batch of ``size`` costs under ``GAIN`` times single calls of ``single_s`` seconds each
        (``extra_s`` a request of batching's own cost included), ``"no"`` if not, ``"measure"`` if unknown or stale (batch to learn
        it; so too without a single call's time to compare with)."""
        if single_s is None:
            return "measure"
        key = size_class(size)
        stale = self._stale.get(key, RETRY)
        estimate = self._estimate.get(key)
        if estimate is None or stale >= RETRY or len(self._samples[key]) < MIN_SAMPLES:
            self._stale[key] = 0
            return "measure"
        self._stale[key] = stale + 1
        return "yes" if estimate + extra_s < GAIN * single_s else "no"

    def record(self, size: int, seconds: float) -> None:
        """A batch call of ``size`` requests took ``seconds``."""
        key = size_class(size)
        samples = self._samples.get(key)
        if samples is None:
            samples = self._samples[key] = deque(maxlen=SAMPLES)
        samples.append(seconds / size)
        fastest = min(samples)
        self._estimate[key] = median([v for v in samples if v <= OUTLIER * fastest])
        self._stale[key] = 0
