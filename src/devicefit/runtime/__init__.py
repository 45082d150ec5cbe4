"""Serving models: a handle with lazy load, bounded async concurrency and a specialization cache.

::

    import devicefit.runtime as rt
    model = rt.load("model.mlpackage", max_in_flight=2, overflow="drop_oldest")
    out = model.predict({"x": x})
    out = await model.predict_async({"x": x})
"""

from __future__ import annotations

from devicefit.engines.cache import CacheEntry, SpecializationCache, default_cache_dir
from devicefit.runtime.handle import Model, PredictionError, StreamResult, load
from devicefit.runtime.scheduler import OVERFLOW_POLICIES, Accounting, Dropped, InFlightScheduler, Rejected

__all__ = [
    "OVERFLOW_POLICIES",
    "Accounting",
    "CacheEntry",
    "Dropped",
    "InFlightScheduler",
    "Model",
    "PredictionError",
    "Rejected",
    "SpecializationCache",
    "StreamResult",
    "default_cache_dir",
    "load",
]
