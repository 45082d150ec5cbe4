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


class ZeroSlice(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x + 1.0
        y[:, :2].zero_()  # coremltools 9.0 has no translation of zero_ (nor torch.export's zero)
        return y * 2


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_zero_on_a_slice_converts_on_both_frontends(frontend):
    x = torch.rand(3, 8, generator=torch.Generator().manual_seed(0))
    got, expected, rescued = run_fn(ZeroSlice().eval(), (x,), frontend)
    assert_close_elementwise(got[0], expected[0], rtol=1e-6)
    assert any(r.startswith("zero") for r in rescued), rescued


class ThroughReshapedViews(torch.nn.Module):
    """Writes through views coremltools cannot write back: a transpose, a flat ``view``, a ``chunk`` part, an
    ``unsqueeze``; TorchScript's graph dropped each write (errors 1-5)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * 2.0
        if self.kind == "transpose":
            y.transpose(0, 1)[0].mul_(3.0)
        elif self.kind == "view":
            y.view(-1)[:3].add_(1.0)
        elif self.kind == "chunk":
            y.chunk(2, dim=1)[1].mul_(0.0)
        else:
            y.unsqueeze(0)[0, :, 1].add_(5.0)
        return y + 1


@pytest.mark.parametrize("kind", ["transpose", "view", "chunk", "unsqueeze"])
def test_writes_through_views_torchscript_cannot_write_back_convert_through_torch_export(kind):
    from devicefit.convert import ConvertOptions, convert
    from tests.convert.helpers import source_of

    x = torch.rand(4, 4, generator=torch.Generator().manual_seed(0))
    got, expected, _ = run_fn(ThroughReshapedViews(kind).eval(), (x,), "auto")
    assert_close_elementwise(got[0], expected[0], rtol=1e-6)
    result = convert(source_of(ThroughReshapedViews(kind).eval(), (x,)), ConvertOptions(precision="fp32"))
    tried = {f.name: f for f in result.scan.frontends}
    assert result.frontend == "torch.export", tried
    assert "in-place" in (tried["torchscript"].error or ""), tried["torchscript"].error
    assert "test_inplace_on_views.py:" in (tried["torchscript"].error or ""), tried["torchscript"].error


class DiagonalJitter(torch.nn.Module):
    """``cov.diagonal(dim1=-2, dim2=-1).add_(eps)``: a covariance made positive definite (GP / Kalman code)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cov = x @ x.transpose(-1, -2)
        cov.diagonal(dim1=-2, dim2=-1).add_(0.5)
        return cov * 2


class DiagonalScatter(torch.nn.Module):
    """``torch.diagonal_scatter`` with an offset on a non-square, batched matrix, on the first two axes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        upper = torch.diagonal_scatter(x, torch.ones(2, 2) * 7.0, 1, -2, -1)  # (2, 4, 3): 2 elements each
        return torch.diagonal_scatter(upper, torch.full((3, 1), -1.0), -1, 0, 1)  # 1 element per column


@pytest.mark.parametrize("module", [DiagonalJitter(), DiagonalScatter()], ids=lambda m: type(m).__name__)
def test_diagonal_writes_convert_through_torch_export(module):
    # coremltools 9.0 has no translation of diagonal_scatter (torch.export's form of a diagonal write)
    x = torch.rand(2, 4, 3, generator=torch.Generator().manual_seed(0))
    got, expected, rescued = run_fn(module.eval(), (x,), "torch.export")
    assert_close_elementwise(got[0], expected[0], rtol=1e-6)
    assert "diagonal_scatter" in rescued, rescued
