"""Coalescing on the interp engine: a fixed-batch package's queued async requests run through its batched
graphs, and every request gets the result its own predict call gives (within the compiled path's tolerance)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from devicefit.interp.rewrites import FP32_RTOL
from tests.runtime.test_burst_to_workers import _lane_state


def _close(got: dict, want: dict) -> None:
    for name, ref in want.items():
        scale = float(np.abs(ref).max()) or 1.0
        np.testing.assert_allclose(got[name], ref, rtol=0, atol=FP32_RTOL * scale)


@pytest.mark.parametrize("policy", ["lane", "measured"])
def test_a_burst_to_a_fixed_batch_package_runs_batched_with_each_requests_own_result(small_pkg, policy):
    import devicefit

    rng = np.random.default_rng(1)
    feeds = [{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(48)]
    model = devicefit.load(small_pkg, engine="interp", max_in_flight=2, cache=False)
    assert model.engine.batch_capacity() == 1  # converted at batch 1: nothing stacks on axis 0
    want = [model.predict(f) for f in feeds]
    sched = model._sched_locked()
    if policy == "lane":  # a backlog goes to the workers, which coalesce it
        sched.policy = _lane_state()

    async def burst() -> list[dict]:
        return await asyncio.gather(*[model.predict_async(f) for f in feeds])

    try:
        batched = 0
        for _ in range(4):  # the batched graphs are built on a size's second use
            got = asyncio.run(burst())
            for g, w in zip(got, want):
                _close(g, w)
            batched = sched.batched_runs + sched.gathering.batches
        assert batched >= 1
        assert model.engine.request_batch_limit() > 1
    finally:
        model.unload()
    stats = model.stats
    assert stats.submitted == stats.completed == 4 * 48
