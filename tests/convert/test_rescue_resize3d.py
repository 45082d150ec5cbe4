"""``F.interpolate(mode="trilinear")`` (3-D U-Nets): coremltools 9.0 had no translation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.convert.helpers import convert_and_compare


class Up3d(torch.nn.Module):
    def __init__(self, **how: object) -> None:
        super().__init__()
        self.how = how

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, mode="trilinear", **self.how) * 2.0


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
@pytest.mark.parametrize(
    "how",
    [
        dict(scale_factor=2, align_corners=False),
        dict(size=(3, 7, 5), align_corners=True),
        dict(scale_factor=1.5),
    ],
    ids=["x2", "size-align", "x1.5"],
)
def test_trilinear_converts_and_matches_pytorch(how, frontend):
    torch.manual_seed(0)
    result, _ = convert_and_compare(Up3d(**how), (torch.randn(1, 2, 4, 5, 6),), frontend, tol=1e-6)
    assert "upsample_trilinear3d" in result.scan.rescued
