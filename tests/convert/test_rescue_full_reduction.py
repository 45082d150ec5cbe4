"""A full reduction (no ``dim``) of a transposed tensor converts.

coremltools 9.0's ``reduce_transposes`` pass reads the ``axes`` input of every reduce op it meets after a
transpose; a full reduction (``x.permute(...).sum()``, ``.mean()``, ``.max()``) has none, and conversion failed
with ``KeyError: 'axes'``, naming no op. Found by the differential fuzzer (tests/interp/difffuzz.py). devicefit
lets the pass stop at such an op (a transpose cannot move through a full reduction anyway: it has no axes to
remap, and the result is the same).
"""

from __future__ import annotations

import pytest
import torch

from tests.convert.elementwise_helpers import assert_close_elementwise, run_fn

CASES = {
    "sum": lambda t: t.transpose(3, 2).sum(),
    "mean": lambda t: torch.relu(t.transpose(3, 2)).mean(),
    "max": lambda t: t.transpose(3, 2).max(),
    "amax": lambda t: t.permute(0, 2, 3, 1).amax(),
}


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_full_reduction_of_a_transpose(case, frontend):
    x = torch.randn(1, 6, 2, 5, generator=torch.Generator().manual_seed(0))
    got, expected, _ = run_fn(CASES[case], (x,), frontend)
    assert_close_elementwise(got[0], expected[0], rtol=1e-6)
