"""The fp16 repair's mixed-precision programs build for deep graphs (a 2-layer BART overflowed the stack)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devicefit.compress.repair import MixedPrecision
from tests.helpers import convert


class Chain(torch.nn.Module):
    """Hundreds of dependent ops in one chain: what a deep model looks like to a recursive graph copy."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(400):
            x = x * 1.001 + (i % 7) * 1e-3
        return x


# slow (the fast suite's 15-minute budget, 2026-12-02): 7.8 s; the shallow repair tests in tests/compress stay fast
@pytest.mark.slow
def test_mixed_precision_program_of_a_deep_chain():
    x = torch.ones(1, 8)
    mlmodel = convert(Chain().eval(), (x,), precision="fp32")
    mixed = MixedPrecision(mlmodel)
    name = mixed.program(frozenset()).inputs[0].name
    fp16 = mixed.program(frozenset())
    kept = mixed.program(frozenset({"mul", "add"}))
    want = Chain()(x).numpy()
    drifted = next(iter(fp16.run({name: x.numpy()}, precision="fp16").values()))
    exact = next(iter(kept.run({name: x.numpy()}, precision="fp16").values()))
    # 400 fp16 roundings drift by a few percent; keeping the chain's ops in fp32 removes the drift
    assert np.isfinite(drifted).all() and np.abs(drifted - want).max() > 1e-2
    np.testing.assert_allclose(exact, want, rtol=1e-4)
