"""``nansum`` / ``nanmean`` / ``renorm``, ``sgn`` / ``angle`` / ``ldexp`` (coremltools 9.0: none of them) against
PyTorch, found by probing one-op modules through both frontends."""

from __future__ import annotations

import math

import pytest
import torch

from tests.convert.elementwise_helpers import check_rescued

FRONTENDS = ["torchscript", "torch.export"]
NAN = math.nan


def _with_nans() -> torch.Tensor:
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5)
    x[0, 1, 2] = x[2, 0, 0] = NAN
    x[1, 2, :] = NAN  # a row with nothing but NaN: nansum 0, nanmean NaN
    return x


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(("dim", "keepdim"), [(None, False), (2, False), ((0, 2), True), (-1, True)])
def test_nansum_and_nanmean(frontend, dim, keepdim):
    x = _with_nans()
    kwargs = {"keepdim": keepdim} if dim is None else {"dim": dim, "keepdim": keepdim}
    check_rescued(lambda t: torch.nansum(t, **kwargs), (x,), frontend, "nansum", rtol=1e-6, atol=1e-6)
    check_rescued(lambda t: torch.nanmean(t, **kwargs), (x,), frontend, "nanmean", rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, math.inf])
def test_renorm(frontend, p):
    torch.manual_seed(1)
    x = torch.randn(4, 3, 5) * torch.tensor([0.1, 1.0, 3.0])[None, :, None]  # some slices under maxnorm
    check_rescued(lambda t: torch.renorm(t, p, 1, 2.0), (x,), frontend, "renorm", rtol=2e-6)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_sgn_angle_ldexp(frontend):
    x = torch.tensor([-2.5, -0.0, 0.0, 1e-30, 7.0, NAN, -math.inf, math.inf])
    check_rescued(torch.sgn, (x,), frontend, "sgn")
    check_rescued(torch.angle, (x,), frontend, "angle")
    exponents = torch.tensor([3, -2, 0, 100, -126, 1, 2, 0], dtype=torch.int32)
    check_rescued(torch.ldexp, (x, exponents), frontend, "ldexp")


def test_nanmean_in_fp16():
    check_rescued(
        lambda t: torch.nanmean(t, dim=2), (_with_nans(),), "torchscript", "nanmean", 2e-3, "fp16", 2e-3
    )
