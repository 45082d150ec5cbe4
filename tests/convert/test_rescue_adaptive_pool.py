"""Adaptive 3-D pooling (video / volumetric nets): coremltools 9.0 has no translation."""

from __future__ import annotations

import pytest
import torch

from tests.convert.helpers import convert_and_compare


class Pool3d(torch.nn.Module):
    def __init__(self, kind: str, size: object) -> None:
        super().__init__()
        self.pool = getattr(torch.nn, f"Adaptive{kind}Pool3d")(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x) * 2.0


# output 1 (the usual classifier head), an even split, and uneven splits (overlapping windows) with None axes
SIZES = [1, (2, 4, 4), (3, 5, None), (1, 3, 2)]


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
@pytest.mark.parametrize("kind", ["Avg", "Max"])
@pytest.mark.parametrize("size", SIZES, ids=str)
def test_adaptive_pool3d_converts_and_matches_pytorch(kind, size, frontend):
    torch.manual_seed(0)
    result, _ = convert_and_compare(Pool3d(kind, size), (torch.randn(2, 3, 4, 8, 7),), frontend, tol=1e-6)
    assert {f"adaptive_{kind.lower()}_pool3d"} & set(result.scan.rescued), result.scan.rescued
