"""Compare model outputs: metrics (one small function each), validation and fp16 divergence search.

Submodules: :mod:`.metrics` (the ``METRICS`` table), :mod:`.validate` (per-output comparisons with
tolerances), :mod:`.divergence` (first divergent op, fp16 overflow/underflow, untrained-model warning).
"""

from __future__ import annotations

from devicefit.compare.metrics import METRICS, MetricResult, accuracy, topk_agreement

__all__ = ["METRICS", "MetricResult", "accuracy", "topk_agreement"]
