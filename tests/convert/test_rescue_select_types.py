"""Rescues whose ``select`` took a wider condition than its two branches: coremltools types a select by ``a`` and
``b`` alone, so the value was declared narrower than it computes (a per-element mask choosing between scalars
declared ``()``; diag's (n, 1) column against an (n, n) mask declared (n, 1)). devicefit's interpreter follows the
values, so only the declared types were wrong; a device plans from them. ``rescue._mil.select`` now widens a
branch to the condition's shape first. Found by the strict-types test run (DEVICEFIT_STRICT_TYPES, tests/conftest.py)."""

from __future__ import annotations

import math

import pytest
import torch

from tests.convert.elementwise_helpers import check_rescued, mistyped_values

X = torch.tensor([-2.5, -0.0, 0.0, 1e-30, 0.3, 7.0, math.nan, -math.inf, math.inf])
LABELS = torch.tensor([0, 3, 3, 9, 1, 0, 2])
CASES = {
    "diag": (lambda t: torch.diag(t, 1), (torch.tensor([1.5, -math.inf, math.nan, 0.25]),), 0.0),
    "diag_embed": (lambda t: torch.diag_embed(t), (torch.randn(2, 3),), 0.0),
    "bincount": (lambda t, w: torch.bincount(t, w, minlength=10), (LABELS, torch.rand(7)), 1e-6),
    "digamma": (torch.digamma, (torch.tensor([-2.5, 0.5, 3.0, 40.0]),), 2e-5),
    "erfinv": (torch.erfinv, (torch.tensor([-1.0, -0.5, 0.0, 0.9, 1.0]),), 1e-6),
    "angle": (torch.angle, (X,), 0.0),
    "heaviside": (lambda t: torch.heaviside(t, torch.tensor([0.5])), (X,), 0.0),
}


@pytest.mark.parametrize("op", sorted(CASES))
def test_select_declares_the_shape_it_computes(op):
    fn, inputs, rtol = CASES[op]
    assert mistyped_values(fn, inputs) == []
    check_rescued(fn, inputs, "torchscript", op, rtol=rtol)


def test_a_constant_branch_takes_the_other_branchs_dtype():
    """median's NaN branch was ``mb.select(has_nan, np.float32(nan), values)``: a model computing in half
    precision failed to convert (b fp16, a fp32). ``_mil.select`` gives a constant branch the other's dtype."""
    x = torch.tensor([[1.0, math.nan, 3.0], [4.0, 2.0, 0.5]])
    check_rescued(lambda t: torch.median(t.half(), 1)[0].float(), (x,), "torchscript", "median")
