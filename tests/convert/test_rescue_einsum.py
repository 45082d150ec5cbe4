"""``torch.einsum`` equations with an ellipsis or an implicit output: coremltools 9.0's parser reads each ``.`` as
a subscript, so ``'...i,ij->...j'`` of a rank-4 operand matched its ``'abcd,cde->abe'`` pattern and gave a (1, 2)
result where PyTorch gives (1, 3, 4, 2), silently (found by the differential fuzzer, tests/interp/difffuzz.py,
seed 2076); other ranks failed without naming the cause. Implicit outputs (``'ab'``, ``'ij,jk'``) were refused.
"""

from __future__ import annotations

import pytest
import torch

from tests.convert.elementwise_helpers import assert_close_elementwise, run_fn

W = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
CASES = {
    "ellipsis_rank4": ("...i,ij->...j", (1, 3, 4, 4), (W,)),
    "ellipsis_rank3": ("...i,ij->...j", (2, 3, 4), (W,)),
    "ellipsis_rank2": ("...i,ij->...j", (5, 4), (W,)),
    "ellipsis_lead": ("i...->...i", (4, 2, 3), ()),
    "implicit_copy": ("ab", (3, 4), ()),
    "implicit_transpose": ("ba", (3, 4), ()),
    "implicit_matmul": ("ij,jk", (3, 4), (W,)),
}


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_einsum_equations(case, frontend):
    equation, shape, consts = CASES[case]
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    got, expected, rescued = run_fn(lambda t: torch.einsum(equation, t, *consts), (x,), frontend)
    assert "einsum" in rescued
    assert_close_elementwise(got[0], expected[0], rtol=1e-5, atol=1e-6)
