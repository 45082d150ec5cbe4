"""Signs of zero that devicefit's ``trunc`` and ``fmod`` lost (found by the one-op probe): ``trunc(-0.0)`` was
``+0`` (``sign(-0) * floor(0)``) and a zero ``fmod`` remainder of a negative dividend was ``+0`` (PyTorch: ``-0``,
the sign of ``x``). ``check_rescued`` compares the sign of every zero."""

from __future__ import annotations

import pytest
import torch

from tests.convert.elementwise_helpers import check_rescued

FRONTENDS = ["torchscript", "torch.export"]
X = torch.tensor([-0.0, 0.0, -0.3, -3.0, -4.5, 4.5, -7.25, 2.0, float("inf"), float("nan")])


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_trunc_keeps_negative_zero(frontend):
    check_rescued(torch.trunc, (X,), frontend, "trunc")


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_zero_fmod_remainder_has_the_dividends_sign(frontend):
    check_rescued(lambda t: torch.fmod(t, -1.5), (X,), frontend, "fmod")
    check_rescued(lambda t: torch.fmod(t, 1.5), (X,), frontend, "fmod")
