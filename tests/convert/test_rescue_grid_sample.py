"""F.grid_sample(mode="nearest") after F.affine_grid against PyTorch, both frontends.

coremltools 9.0 refuses it ("'sampling_mode' not supported"; on torch.export "Torch var ... not found").
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from devicefit.convert import scan
from tests.convert.helpers import convert_and_compare, source_of

FRONTENDS = ["torchscript", "torch.export"]
# rotation + zoom + shift: samples land between pixels and some fall outside the image
THETA = [[[0.9, 0.35, 0.1], [-0.3, 1.2, 0.07]], [[1.1, -0.2, -0.15], [0.25, 0.8, 0.2]]]


class AffineWarp(torch.nn.Module):
    def __init__(self, padding_mode: str, align_corners: bool, mode: str = "nearest") -> None:
        super().__init__()
        self.mode = mode
        self.register_buffer("theta", torch.tensor(THETA))
        self.padding_mode, self.align_corners = padding_mode, align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = F.affine_grid(self.theta, [2, 3, 6, 8], align_corners=self.align_corners)
        return F.grid_sample(
            x, grid, mode=self.mode, padding_mode=self.padding_mode, align_corners=self.align_corners
        )


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
def test_nearest_affine_warp_matches_torch(padding_mode, align_corners, frontend):
    torch.manual_seed(0)
    result, _ = convert_and_compare(
        AffineWarp(padding_mode, align_corners), (torch.randn(2, 3, 5, 7),), frontend
    )
    assert "grid_sampler" in result.scan.rescued


def test_nearest_affine_warp_in_fp16():
    torch.manual_seed(0)
    convert_and_compare(AffineWarp("zeros", False), (torch.randn(2, 3, 5, 7),), precision="fp16", tol=2e-3)


class ConstantGrid(torch.nn.Module):
    """A grid given directly (a buffer), sampled with nearest."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("grid", torch.rand(2, 4, 6, 2) * 2.4 - 1.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.grid_sample(x, self.grid, mode="nearest", align_corners=False)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_nearest_constant_grid_matches_torch(frontend):
    torch.manual_seed(0)
    convert_and_compare(ConstantGrid(), (torch.randn(2, 3, 5, 7),), frontend)


class LearnedWarp(torch.nn.Module):
    """A spatial transformer: theta is computed from the input, so the sampled pixels are not known up front."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.loc = torch.nn.Linear(3 * 5 * 7, 6)
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta = self.loc(x.flatten(1)).reshape(-1, 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode=self.mode, align_corners=False)


def test_nearest_with_a_run_time_theta_says_what_to_do():
    report = scan(source_of(LearnedWarp("nearest"), (torch.randn(1, 3, 5, 7),)))
    assert not report.ok
    (entry,) = report.unsupported
    assert "test_rescue_grid_sample.py:" in entry.location, entry.location
    assert "mode='bilinear'" in entry.hint and "constant" in entry.hint, entry.hint


def test_bilinear_stays_with_coremltools():
    torch.manual_seed(0)
    result, _ = convert_and_compare(LearnedWarp("bilinear"), (torch.randn(1, 3, 5, 7),))
    assert "grid_sampler" not in result.scan.rescued


def test_bilinear_affine_warp_on_torch_export():
    """coremltools' own path reads the literal mode arguments as graph values on torch.export and fails."""
    torch.manual_seed(0)
    result, _ = convert_and_compare(LearnedWarp("bilinear"), (torch.randn(1, 3, 5, 7),), "torch.export")
    assert "grid_sampler" in result.scan.rescued
    convert_and_compare(
        AffineWarp("zeros", True, mode="bilinear"), (torch.randn(2, 3, 5, 7),), "torch.export"
    )


class GridInput(torch.nn.Module):
    """The grid is a model input: coremltools' MIL resample handles it, devicefit leaves it alone."""

    def forward(self, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        return F.grid_sample(x, grid, mode="nearest", align_corners=False)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_nearest_on_a_grid_input_stays_with_coremltools(frontend):
    torch.manual_seed(0)
    example = (torch.randn(1, 3, 5, 7), torch.rand(1, 4, 6, 2) * 2.4 - 1.2)
    result, _ = convert_and_compare(GridInput(), example, frontend)
    assert "grid_sampler" not in result.scan.rescued
