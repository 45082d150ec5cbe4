"""``affine_grid`` + bilinear ``grid_sample`` with ``padding_mode="border"`` / ``"reflection"`` (coremltools 9.0
refused: its MIL ``affine`` pads with zeros only) and bicubic sampling of a one-pixel-wide input (MIL ``clip``
refused alpha == beta). Found by the differential fuzzer; fp32 and fp16 through the interpreter."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.convert.elementwise_helpers import check_rescued

# a theta that maps part of the output outside [-1, 1], so the padding decides those samples
THETA = torch.tensor([[[1.3, 0.4, 0.5], [-0.6, 1.5, -0.3]]])


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
@pytest.mark.parametrize("padding", ["border", "reflection"])
@pytest.mark.parametrize("align", [False, True])
def test_affine_grid_sample_with_border_and_reflection(frontend, padding, align):
    x = torch.randn(1, 2, 4, 5, generator=torch.Generator().manual_seed(0))

    def fn(t: torch.Tensor) -> torch.Tensor:
        return F.grid_sample(t, F.affine_grid(THETA, [1, 2, 3, 4], align), "bilinear", padding, align)

    check_rescued(fn, (x,), frontend, "grid_sampler", rtol=1e-5, atol=1e-6)
    check_rescued(fn, (x,), frontend, "grid_sampler", precision="fp16", rtol=1e-2, atol=1e-2)


def test_affine_grid_sample_with_a_runtime_theta_and_differing_align_corners():
    x = torch.randn(1, 2, 4, 5, generator=torch.Generator().manual_seed(1))

    def fn(t: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        return F.grid_sample(t, F.affine_grid(theta, [1, 2, 3, 4], True), "bilinear", "border", False)

    check_rescued(fn, (x, THETA), "torchscript", "grid_sampler", rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 2, 1, 3), (1, 2, 3, 1)])
def test_bicubic_grid_sample_of_a_one_pixel_axis(shape):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    grid = torch.rand(1, 3, 3, 2, generator=torch.Generator().manual_seed(3)) * 3 - 1.5
    for padding in ("zeros", "border"):
        check_rescued(
            lambda t, p=padding: F.grid_sample(t, grid, "bicubic", p, False),
            (x,),
            "torch.export",
            "grid_sampler",
            rtol=1e-5,
            atol=1e-6,
        )
