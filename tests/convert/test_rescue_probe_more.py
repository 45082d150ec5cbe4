"""Ops the one-op probe found refused by coremltools 9.0: ``tensor_split`` (TorchScript), ``msort``, ``dist``,
``addbmm``, against PyTorch."""

from __future__ import annotations

import math

import pytest
import torch

from tests.convert.elementwise_helpers import check_rescued

FRONTENDS = ["torchscript", "torch.export"]


def test_tensor_split_on_torchscript():
    v = torch.randn(3, 10)
    check_rescued(lambda t: torch.tensor_split(t, 3, dim=1)[1] * 2, (v,), "torchscript", "tensor_split")
    cut = lambda t: torch.cat(torch.tensor_split(t, [2, 7], dim=1)[::-1], 1)  # noqa: E731
    check_rescued(cut, (v,), "torchscript", "tensor_split")
    check_rescued(lambda t: torch.tensor_split(t, (1,), 0)[1], (v,), "torchscript", "tensor_split")


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_msort(frontend):
    x = torch.tensor([[3.0, -1.0], [math.nan, 2.0], [-5.0, 2.0], [0.5, -7.0]])
    check_rescued(torch.msort, (x,), frontend, "msort")


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("p", [0.0, 1.0, 2.0, 3.5, math.inf])
def test_dist(frontend, p):
    torch.manual_seed(0)
    a, b = torch.randn(3, 5), torch.randn(3, 5)
    a[0, 0] = b[0, 0]  # one zero difference (p = 0 counts nonzeros)
    check_rescued(lambda x, y: torch.dist(x, y, p), (a, b), frontend, "dist", rtol=1e-6)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_addbmm(frontend):
    torch.manual_seed(0)
    bias, b1, b2 = torch.randn(3, 5), torch.randn(4, 3, 6), torch.randn(4, 6, 5)
    fn = lambda m, x, y: torch.addbmm(m, x, y, beta=0.5, alpha=2.0)  # noqa: E731
    check_rescued(fn, (bias, b1, b2), frontend, "addbmm", rtol=1e-5, atol=1e-6)
