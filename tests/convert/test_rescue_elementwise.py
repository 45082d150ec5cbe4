"""Elementwise ops coremltools 9.0 has no translation for: each against PyTorch on both frontends."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.convert.helpers import convert_and_compare


class Elementwise(torch.nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (
            torch.trunc(x * 3),
            torch.addcmul(x, x, y, value=0.5) + torch.addcdiv(y, x, y.abs() + 1.0, value=-2.0),
            torch.lerp(x, y, 0.3) + torch.lerp(x, y, y.sigmoid()),
            F.logsigmoid(x * 10),
            torch.hypot(x, y),
            F.celu(x, alpha=0.5),
        )


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_elementwise_ops_convert_and_match_pytorch(frontend):
    torch.manual_seed(0)
    result, _ = convert_and_compare(Elementwise(), (torch.randn(3, 8), torch.randn(3, 8)), frontend, tol=1e-5)
    if frontend == "torchscript":  # torch.export decomposes several of them itself
        assert {"trunc", "addcmul", "addcdiv", "lerp", "log_sigmoid", "hypot", "celu"} <= set(
            result.scan.rescued
        )
