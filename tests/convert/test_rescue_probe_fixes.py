"""Silent mistranslations in coremltools 9.0 found by converting one-op modules through both frontends and running
them against PyTorch: ``gelu(approximate="tanh")`` on torch.export (the keyword was ignored: 2e-3 off),
``atan2(0, -1)`` (0, not pi), ``logcumsumexp`` (``log(cumsum(exp(x)))``: inf from 89, -103 for -inf)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.convert.elementwise_helpers import check_rescued, run_fn

FRONTENDS = ["torchscript", "torch.export"]
INF, NAN = math.inf, math.nan


def test_gelu_tanh_keyword_on_torch_export():
    x = torch.linspace(-6.0, 6.0, 97)
    check_rescued(lambda t: F.gelu(t, approximate="tanh"), (x,), "torch.export", "gelu", rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_plain_gelu_stays_coremltools_own(frontend):
    _, _, rescued = run_fn(lambda t: F.gelu(t), (torch.randn(8),), frontend)
    assert "gelu" not in rescued


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_atan2_quadrants_zeros_and_infinities(frontend):
    y = torch.tensor(
        [0.0, -0.0, 0.0, -0.0, 0.0, -0.0, 1.0, -1.0, 0.0, 2.0, -2.0, INF, -INF, INF, 3.0, NAN, 1e-30]
    )
    x = torch.tensor(
        [-1.0, -1.0, 0.0, 0.0, -0.0, -0.0, 0.0, 0.0, 5.0, -3.0, -3.0, INF, -INF, 1.0, -INF, 1.0, -1e30]
    )
    check_rescued(torch.atan2, (y, x), frontend, "atan2", rtol=2e-7)
    torch.manual_seed(0)
    check_rescued(torch.atan2, (torch.randn(200), torch.randn(200)), frontend, "atan2", rtol=4e-7, atol=1e-7)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_atan2_broadcast_declares_the_shapes_it_computes(frontend):
    # a (1,) y against a (2, 3) x: the origin's select(x is negative, half turn, y * 0) chose between two (1,)
    # values by a (2, 3) mask, and coremltools types a select by a and b alone: declared (1,), computed (2, 3)
    from tests.convert.elementwise_helpers import mistyped_values

    y = torch.tensor([-0.5])
    x = torch.tensor([[-1.0, 0.0, -0.0], [2.0, -3.0, 0.0]])
    check_rescued(torch.atan2, (y, x), frontend, "atan2", rtol=2e-7)
    assert mistyped_values(torch.atan2, (y, x), frontend) == []


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_logcumsumexp_without_overflow(frontend):
    torch.manual_seed(0)
    x = torch.randn(3, 7, 5) * 60.0  # exp overflows fp32 from 89
    x[0, 0, 1] = -INF
    x[1, :, 2] = -INF  # an all -inf column: -inf throughout
    x[2, 3, 0] = INF
    check_rescued(lambda t: torch.logcumsumexp(t, 1), (x,), frontend, "logcumsumexp", rtol=1e-6, atol=1e-5)
    x[0, 4, 3] = NAN  # NaN from where it appears on, not before
    check_rescued(lambda t: torch.logcumsumexp(t, -2), (x,), frontend, "logcumsumexp", rtol=1e-6, atol=1e-5)


def test_logcumsumexp_in_fp16():
    x = torch.randn(2, 16) * 3.0
    check_rescued(lambda t: torch.logcumsumexp(t, 1), (x,), "torchscript", "logcumsumexp", 2e-3, "fp16", 2e-2)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_logcumsumexp_declares_the_shapes_it_computes(frontend):
    # the prefix rows were select(prefix, x_j, x_0): coremltools types a select by a and b alone, so the (n, n)
    # table was declared (1, n) and the result's running maximum (..., 1, 1) (right values in the interpreter)
    from tests.convert.elementwise_helpers import mistyped_values

    x = torch.randn(2, 10, 3, generator=torch.Generator().manual_seed(0))
    wrong = mistyped_values(lambda t: torch.logcumsumexp(t, 1), (x,), frontend)
    assert not wrong, wrong
