"""``F.grid_sample(mode="bicubic")`` (coremltools 9.0 refuses it) against PyTorch: a grid computed at run time,
``affine_grid`` with a run-time theta, and a constant grid; every padding mode, both ``align_corners``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.convert.elementwise_helpers import check_rescued

FRONTENDS = ["torchscript", "torch.export"]
PADDINGS = ["zeros", "border", "reflection"]


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    x = torch.randn(2, 3, 7, 9)
    grid = torch.rand(2, 5, 6, 2) * 3.2 - 1.6  # beyond [-1, 1]: every padding rule is used
    grid[0, 0, 0] = torch.tensor([-1.0, 1.0])  # corners and exact pixel centres
    grid[1, 2, 3] = torch.tensor([0.0, 0.0])
    return x, grid


# the fast suite's 15-minute budget (2026-12-02): one case per padding mode, both align_corners and both
# frontends among them; the other nine combinations run in the slow tier (~2 s each)
FAST_GRID_CASES = {
    ("zeros", False, "torchscript"),
    ("border", True, "torch.export"),
    ("reflection", True, "torchscript"),
}


def _grid_cases() -> list:
    return [
        pytest.param(p, a, f, marks=() if (p, a, f) in FAST_GRID_CASES else (pytest.mark.slow,))
        for p in PADDINGS
        for a in (False, True)
        for f in FRONTENDS
    ]


@pytest.mark.parametrize(("padding", "align_corners", "frontend"), _grid_cases())
def test_bicubic_with_a_run_time_grid(padding, align_corners, frontend):
    def fn(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        return F.grid_sample(x, grid, mode="bicubic", padding_mode=padding, align_corners=align_corners)

    check_rescued(fn, _inputs(), frontend, "grid_sampler", rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_bicubic_after_affine_grid_with_a_run_time_theta(frontend):
    def fn(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        grid = F.affine_grid(theta, [2, 3, 6, 8], align_corners=False)
        return F.grid_sample(x, grid, mode="bicubic", padding_mode="border", align_corners=False)

    theta = torch.tensor([[[0.9, 0.35, 0.1], [-0.3, 1.2, 0.07]], [[1.1, -0.2, -0.15], [0.25, 0.8, 0.2]]])
    check_rescued(fn, (_inputs()[0], theta), frontend, "grid_sampler", rtol=1e-5, atol=2e-6)


class ConstantGrid(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("grid", _inputs(1)[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.grid_sample(x, self.grid, mode="bicubic", padding_mode="reflection", align_corners=True)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_bicubic_with_a_constant_grid_and_in_fp16(frontend):
    x = _inputs()[0]
    module = ConstantGrid()
    check_rescued(module, (x,), frontend, "grid_sampler", rtol=1e-5, atol=2e-6)
    # fp16: coordinates, weights and sums in half precision
    check_rescued(module, (x,), frontend, "grid_sampler", precision="fp16", rtol=0.0, atol=3e-2)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_bicubic_zero_padding_keeps_an_inf_pixel_out_of_taps_outside(frontend):
    # a tap outside the image reads 0 (select), so an inf pixel elsewhere only reaches the samples near it
    x, grid = _inputs()
    x[:, :, 3, 4] = float("inf")
    grid[:, :, :, 0] = grid[:, :, :, 0].clamp(-1.6, -1.1)  # samples left of the image: only far taps

    def fn(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        return F.grid_sample(x, grid, mode="bicubic", padding_mode="zeros", align_corners=False)

    check_rescued(fn, (x, grid), frontend, "grid_sampler", rtol=1e-5, atol=2e-6)
