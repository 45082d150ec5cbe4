"""In-place ops called on a view: ``y[..., 4:].add_(z)``, ``y.narrow(1, 4, 3).mul_(0.5)``, ``y[:, 0].clamp_(min=0)``.

coremltools 9.0 turns ``aten::add_`` (and every other in-place op) into a plain ``add``: the result is a new
value and the tensor the view belongs to is left unchanged, a silently wrong program (round-6 outside model
"in-place ops on views": SNR 3.8 dB). Only ``copy_`` / ``fill_`` are written back (``y[..., 4:] += z`` traces to
one, so it was right). Each in-place op on a view is now followed by a ``copy_`` of its result into the view.
"""

from __future__ import annotations

import pytest
import torch

from tests.convert.elementwise_helpers import assert_close_elementwise, run_fn


class SliceAdd(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * 2.0
        y[..., 4:].add_(x[..., :4])
        return y + 1


class NarrowMul(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x + 0.5
        y.narrow(1, 4, 3).mul_(0.5)
        return y


class SelectClampThenSub(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x - 0.5
        y[:, 0].clamp_(min=0.0)
        y[1:, ::2].sub_(1.0).div_(3.0)  # a chain of in-place ops on one view
        return y.sum(-1)


class ResultUsed(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * 3.0
        z = y[:, 2:5].mul_(x[:, :3])  # the in-place result is used too
        return y + z.sum(-1, keepdim=True)


@pytest.mark.parametrize(
    "module", [SliceAdd(), NarrowMul(), SelectClampThenSub(), ResultUsed()], ids=lambda m: type(m).__name__
)
def test_in_place_ops_on_views_write_back_like_pytorch(module):
    x = torch.rand(3, 8, generator=torch.Generator().manual_seed(0))
    got, expected, _ = run_fn(module.eval(), (x,), "torchscript")
    assert_close_elementwise(got[0], expected[0], rtol=1e-6)
