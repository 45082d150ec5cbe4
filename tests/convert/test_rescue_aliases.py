"""PyTorch's alias names of ops (``torch.multiply``...): coremltools 9.0 had no translation for them."""

from __future__ import annotations

import pytest
import torch

from tests.convert.helpers import convert_and_compare


class Aliases(torch.nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        gate = (
            torch.greater(x, 0.1).float() + torch.less_equal(y, -0.2).float() + torch.not_equal(x, y).float()
        )
        mixed = torch.multiply(x, y) + torch.divide(x, y.abs() + 1.0, rounding_mode="floor")
        mixed = torch.subtract(mixed, torch.absolute(torch.negative(y))) * torch.special.expit(x)
        angles = torch.arctan(x) + torch.arcsin(x.clamp(-0.9, 0.9))
        stacked = torch.concatenate([torch.swapaxes(mixed, 1, 2), torch.swapdims(angles, 2, 1)], dim=1)
        return stacked * gate.sum(), torch.greater_equal(x, y).float() - torch.less(x, y).float()


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_alias_ops_convert_and_match_pytorch(frontend):
    torch.manual_seed(0)
    result, _ = convert_and_compare(Aliases(), (torch.randn(2, 3, 4), torch.randn(2, 3, 4)), frontend)
    if frontend == "torchscript":  # torch.export already decomposes aliases into the ops they name
        assert {"multiply", "divide", "greater", "swapaxes", "concatenate"} <= set(result.scan.rescued)
