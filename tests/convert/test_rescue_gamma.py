"""``lgamma`` and ``digamma`` (coremltools 9.0 has neither) against PyTorch over 1e-30 .. 1e30 of both signs.

Measured (fp32, this grid): lgamma within 3.3e-7 relative for x > 0 (through its zeros at 1 and 2) and below
-10, 3e-6 absolute on [-10, -0.5] (relative is lost near the negative zeros, as in every fp32 reflection);
digamma follows PyTorch's own algorithm: 8e-7 relative away from its root at 1.46 and its poles, 1.6e-4 relative
at the root (PyTorch's own fp32 result is 2e-4 off there), 3e-5 near the poles.
"""

from __future__ import annotations

import pytest
import torch

from tests.convert.special_grid import check_within, wide_grid

FRONTENDS = ["torchscript", "torch.export"]


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_lgamma_over_the_whole_range(frontend):
    x = wide_grid()
    positive = x.clone()
    positive[positive < -10] = 3.0  # the reflection band is checked below with an absolute bound
    assert (
        check_within(torch.lgamma, torch.where(x > -0.5, x, positive.abs()), frontend, "lgamma", rtol=4e-7)
        < 4e-7
    )
    check_within(torch.lgamma, x, frontend, "lgamma", rtol=4e-7, atol=4e-6)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_lgamma_poles_and_special_names(frontend):
    x = torch.tensor([0.0, -0.0, -1.0, -2.0, -1e7, float("inf"), -float("inf"), 1.0, 2.0, 1e-40, 4.1e36])
    check_within(torch.special.gammaln, x, frontend, "lgamma", rtol=4e-7)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_digamma_over_the_whole_range(frontend):
    x = wide_grid()
    check_within(torch.digamma, x, frontend, "digamma", rtol=3e-5, atol=1e-6)
    away = x[(x > 2.0) | ((x > 0) & (x < 1.2))]
    assert check_within(torch.special.psi, away, frontend, "digamma", rtol=1e-6) < 1e-6


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_lgamma_and_digamma_in_fp16(frontend):
    # negatives at half-integers: near a pole the fp16 rounding of x itself moves lgamma by |digamma| * 2e-3
    x = torch.cat([torch.linspace(0.05, 30.0, 400), torch.tensor([0.0, -2.0, 1e-3, -0.5, -1.5, -2.5, -3.5])])
    check_within(torch.lgamma, x, frontend, "lgamma", rtol=4e-3, atol=4e-3, precision="fp16")
    check_within(torch.digamma, x, frontend, "digamma", rtol=1e-2, atol=4e-3, precision="fp16")
