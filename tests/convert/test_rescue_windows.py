"""``Tensor.unfold`` (coremltools 9.0: no translation) and ``torch.outer`` of an int and a float vector."""

from __future__ import annotations

import pytest
import torch

from tests.convert.helpers import convert_and_compare


class Patches(torch.nn.Module):
    def __init__(self, dim: int, size: int, step: int) -> None:
        super().__init__()
        self.dim, self.size, self.step = dim, size, step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unfold(self.dim, self.size, self.step) * 2.0


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
@pytest.mark.parametrize(("dim", "size", "step"), [(-1, 8, 8), (1, 3, 2), (0, 2, 1), (2, 7, 7)])
def test_unfold_converts_and_matches_pytorch(dim, size, step, frontend):
    torch.manual_seed(0)
    result, _ = convert_and_compare(Patches(dim, size, step), (torch.randn(3, 5, 32),), frontend, tol=1e-7)
    assert "unfold" in result.scan.rescued


class SinePositions(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = torch.arange(x.shape[1], dtype=torch.int32)
        omega = torch.tensor([1.0, 0.1, 0.01, 0.001])
        angles = torch.outer(grid, omega)  # int32 x fp32: RT-DETR's position embedding
        return x + torch.cat([angles.sin(), angles.cos()], dim=1)


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_outer_of_an_int_and_a_float_vector_converts_and_matches_pytorch(frontend):
    result, _ = convert_and_compare(SinePositions(), (torch.randn(2, 6, 8),), frontend, tol=1e-6)
    assert "outer" in result.scan.rescued


class FloatRange(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(x.shape[1], dtype=torch.float32)  # coremltools made it int32
        steps = torch.arange(1, 9, 2, dtype=torch.float32)
        grid = torch.arange(0, x.shape[1], 1, dtype=torch.float16).float()
        return x + torch.sin(positions)[None, :, None] * steps + torch.cos(grid)[None, :, None]


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_arange_keeps_the_float_dtype_asked_for(frontend):
    # sin(arange(n, dtype=float32)) failed to convert: 'expects tensor or scalar of dtype fp16/fp32, got int32'
    result, _ = convert_and_compare(FloatRange(), (torch.randn(2, 6, 4),), frontend, tol=1e-6)
    assert "arange" in result.scan.rescued
