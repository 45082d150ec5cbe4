"""In-place updates of a slice that does not start at the first axis: ``boxes[..., 0::2] *= w`` (box scaling in
every detector's post-processing), ``grid[..., 0] /= width`` (RT-DETR's anchors).

coremltools 9.0 fuses the ``slice`` / ``select`` chain feeding ``copy_`` into one assignment whose i-th slice it
applies to axis i, ignoring each op's ``dim``; PyTorch records only the non-trivial ones, so ``[..., 0::2]`` (one
slice, dim 2) was applied to axis 0: a silently wrong program (SNR -2 dB), or a failed conversion ("The updates
tensor should have shape [8, 8, 2]. Got (1, 8, 8)"). The chains are padded with full slices first.
"""

from __future__ import annotations

import pytest
import torch

from tests.convert.elementwise_helpers import assert_close_elementwise, run_fn


class Boxes(torch.nn.Module):
    def forward(self, boxes: torch.Tensor) -> torch.Tensor:
        b = boxes * 1.0
        b[..., 0::2] *= 32  # x coordinates
        b[..., 1::2] *= 24  # y coordinates
        b[:, :, 1] += 1
        return b


class Anchors(torch.nn.Module):
    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        g = grid.unsqueeze(0) + 0.5
        g[..., 0] /= 8
        g[..., 1] = g[..., 1] * 3 - 1
        return g


class Middle(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        y[:, 1:3] = 0.0  # a fill on axis 1
        y[:, :, -1] = y[:, :, 0]  # a copy on axis 2, negative index
        return y


@pytest.mark.parametrize(
    ("module", "shape"), [(Boxes(), (2, 5, 4)), (Anchors(), (8, 8, 2)), (Middle(), (2, 4, 3))]
)
def test_slice_assignments_on_later_axes_match_pytorch(module, shape):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    got, expected, _ = run_fn(module.eval(), (x,), "torchscript")
    assert_close_elementwise(got[0], expected[0], rtol=1e-6)
