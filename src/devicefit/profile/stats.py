"""Percentiles with distribution-free confidence intervals (order statistics)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

Z95 = 1.959963984540054


@dataclass
class Percentile:
    """A sample percentile and its ~95% confidence interval (None bounds: too few samples)."""

    q: float
    value: float
    ci_low: float | None
    ci_high: float | None


def percentile_ci(samples: Sequence[float], q: float, z: float = Z95) -> Percentile:
    """The q-quantile with an order-statistic CI: ranks n*q -/+ z*sqrt(n*q*(1-q)) (binomial, normal approx.).

    Needs no distributional assumption; the bound is None when its rank falls outside the sample, which
    says "take more repetitions" (p99 needs a few hundred).
    """
    x = np.sort(np.asarray(samples, dtype=np.float64))
    n = len(x)
    if n == 0:
        return Percentile(q, math.nan, None, None)
    value = float(np.quantile(x, q))
    half = z * math.sqrt(n * q * (1 - q))
    lo_rank = math.floor(n * q - half)
    hi_rank = math.ceil(n * q + half)
    low = float(x[lo_rank - 1]) if lo_rank >= 1 else None
    high = float(x[hi_rank - 1]) if hi_rank <= n else None
    return Percentile(q, value, low, high)


@dataclass
class LatencyStats:
    """Latency samples (milliseconds, raw) and their summary."""

    samples_ms: list[float] = field(default_factory=list)
    p50: Percentile | None = None
    p90: Percentile | None = None
    p99: Percentile | None = None
    mean_ms: float = math.nan
    min_ms: float = math.nan

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> LatencyStats:
        s = [float(v) for v in samples_ms]
        return cls(
            samples_ms=s,
            p50=percentile_ci(s, 0.50),
            p90=percentile_ci(s, 0.90),
            p99=percentile_ci(s, 0.99),
            mean_ms=float(np.mean(s)) if s else math.nan,
            min_ms=float(np.min(s)) if s else math.nan,
        )
