"""Profiling: load times, latency percentiles with confidence intervals, throughput, peak memory.

Library calls return :class:`ProfileReport` / :class:`EngineProfile` objects that keep the raw samples;
only the CLI prints.
"""

from __future__ import annotations

from devicefit.profile.harness import EngineProfile, ProfileReport, ThroughputPoint, profile, profile_engine
from devicefit.profile.stats import LatencyStats, Percentile, percentile_ci

__all__ = [
    "EngineProfile",
    "LatencyStats",
    "Percentile",
    "ProfileReport",
    "ThroughputPoint",
    "percentile_ci",
    "profile",
    "profile_engine",
]
