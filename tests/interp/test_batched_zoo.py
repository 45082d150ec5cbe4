"""Batched compiled graphs (interp/batched.py) on the whole zoo, fp32 and fp16 emulation.

Reference: one ``predict_validated`` per request on the same engine. Tolerance: ``rewrites.FP32_RTOL`` /
``FP16_RTOL`` of each output's largest magnitude (bit for bit where the batched graph was, ``graph.exact``).
Every model converted at batch 1 batches, except the LSTM: its compiled graph keeps ``aten::lstm``, which has
no vmap batching rule, so it runs one call per request and says so.
"""

from __future__ import annotations

import numpy as np
import pytest

from devicefit.engines.interp_engine import InterpEngine
from devicefit.interp.rewrites import FP16_RTOL, FP32_RTOL
from tests.helpers import convert
from tests.interp.test_batched import assert_matches
from tests.zoo import ZOO, build

NOT_BATCHED = {"lstm": "Batching rule not implemented for aten::lstm"}
FAST = {"resnet", "gru", "lstm"}  # a conv net, an unrolled recurrence, the one that falls back (~1 s each)


@pytest.mark.parametrize(
    "entry", [pytest.param(e, id=e.name, marks=() if e.name in FAST else pytest.mark.slow) for e in ZOO]
)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_zoo_batched_equals_one_predict_per_request(entry, precision):
    model, inputs = build(entry, batch=1)
    mlmodel = convert(model, inputs, target="iOS18", precision=precision, input_names=entry.input_names)
    engine = InterpEngine(mlmodel, precision=precision, cache=False).load()
    assert engine.batch_capacity() == 1
    feeds = {n: t.numpy() for n, t in zip(entry.input_names, inputs)}
    # distinct requests: float inputs scaled per request, integer ones (token ids) as given
    batch = [{n: v * (1 + i / 4) if v.dtype.kind == "f" else v for n, v in feeds.items()} for i in range(4)]
    want = [engine.predict_validated(f) for f in batch]
    rtol = FP16_RTOL if precision == "fp16" else FP32_RTOL
    for _ in range(2):
        got = engine.predict_batch_validated(batch)
    if entry.name in NOT_BATCHED:
        (fallback,) = engine.batched.fallbacks
        assert NOT_BATCHED[entry.name] in fallback.reason and engine.request_batch_limit() == 1
        assert_matches(got, want, None)
        return
    assert not engine.batched.fallbacks, [f.describe() for f in engine.batched.fallbacks]
    (graph,) = engine.batched.graphs
    assert graph.size == 4
    assert_matches(got, want, None if graph.exact else rtol)
    assert all(np.isfinite(a).all() for g in got for a in g.values() if a.dtype.kind == "f")
