"""Bicubic upsampling, per-channel PReLU, element assignment and scalar where against PyTorch, both frontends."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from devicefit.convert.rescue.resize import bicubic_matrix
from tests.convert.helpers import convert_and_compare

FRONTENDS = ["torchscript", "torch.export"]


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize(
    ("size_in", "size_out", "scale"), [(5, 7, None), (6, 12, 2.0), (8, 3, None), (4, 10, 2.5)]
)
def test_bicubic_matrix_is_torch_interpolation(size_in, size_out, scale, align_corners):
    """The 1-D weights reproduce F.interpolate on each basis vector (independent of any conversion)."""
    eye = torch.eye(size_in).reshape(size_in, 1, 1, size_in)
    kwargs = {"scale_factor": (1.0, scale)} if scale else {"size": (1, size_out)}
    expected = (
        F.interpolate(eye, mode="bicubic", align_corners=align_corners, **kwargs).reshape(size_in, -1).T
    )
    got = bicubic_matrix(size_in, expected.shape[0], align_corners, scale if not align_corners else None)
    np.testing.assert_allclose(got, expected.double().numpy(), atol=1e-6)


class Bicubic(torch.nn.Module):
    def __init__(self, align_corners: bool, **resize: object) -> None:
        super().__init__()
        self.align_corners, self.resize = align_corners, resize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, mode="bicubic", align_corners=self.align_corners, **self.resize)


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize(
    "resize", [{"size": (7, 9)}, {"scale_factor": 2.0}, {"size": (3, 4)}], ids=["size", "scale", "down"]
)
def test_bicubic_matches_torch(resize, align_corners, frontend):
    torch.manual_seed(0)
    result, _ = convert_and_compare(Bicubic(align_corners, **resize), (torch.randn(2, 3, 5, 6),), frontend)
    assert "upsample_bicubic2d" in result.scan.rescued


class LinearPReLU(torch.nn.Module):
    """Per-channel PReLU after a Linear (rank 2) or a Conv1d (rank 3), as MTCNN's O-Net has it."""

    def __init__(self, rank: int, shared: bool = False) -> None:
        super().__init__()
        self.rank = rank
        self.layer = torch.nn.Linear(4, 6) if rank == 2 else torch.nn.Conv1d(4, 6, 3)
        self.act = torch.nn.PReLU(1 if shared else 6)
        with torch.no_grad():
            self.act.weight.copy_(torch.linspace(-0.5, 0.9, self.act.weight.numel()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.layer(x))


class ConvPReLU(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 5, 3)
        self.act = torch.nn.PReLU(5)
        with torch.no_grad():
            self.act.weight.copy_(torch.linspace(-0.5, 0.9, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(
    ("net", "shape"),
    [
        (lambda: LinearPReLU(2), (3, 4)),
        (lambda: LinearPReLU(3), (2, 4, 8)),
        (lambda: LinearPReLU(2, shared=True), (3, 4)),
        (ConvPReLU, (1, 3, 8, 8)),
    ],
    ids=["rank2", "rank3", "rank2_shared", "rank4"],
)
def test_prelu_per_channel_any_rank(net, shape, frontend):
    torch.manual_seed(0)
    convert_and_compare(net(), (torch.randn(*shape),), frontend)


class IndexAssign(torch.nn.Module):
    """BEiT's relative-position index: int64 in-place assignments in forward, constant-only (folded)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = torch.zeros(5, 5, dtype=torch.long)
        index[1:, 1:] = torch.arange(16).view(4, 4)
        index[0, 0:] = 20
        index[0:, 0] = 21
        index[0, 0] = 22
        return x + index.float()


class TensorAssign(torch.nn.Module):
    """Assignment into a computed tensor: a scalar of another dtype, and a slice."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        y[0, 0] = 3
        y[:, 1] = x[:, 2] * 2
        y[1] = 7
        return y


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("net", [IndexAssign, TensorAssign])
def test_assignment_in_forward(net, frontend):
    torch.manual_seed(0)
    convert_and_compare(net(), (torch.randn(5, 5),), frontend)


class ScalarWhere(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ints = (x * 10).int()
        return torch.where(x > 0, x, -2.5), torch.where(x > 0, 1.5, x), torch.where(x > 0, ints, 4)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_where_with_scalar_operands(frontend):
    torch.manual_seed(0)
    convert_and_compare(ScalarWhere(), (torch.randn(3, 4),), frontend)


class BeitIndex(torch.nn.Module):
    """BEiT's own relative-position index builder (in-place int64 assignments, a 0-d slot last)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from transformers.models.beit.modeling_beit import BeitRelativePositionBias

        return x + BeitRelativePositionBias.generate_relative_position_index((2, 2)).float()


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_beit_relative_position_index(frontend):
    convert_and_compare(BeitIndex(), (torch.randn(5, 5),), frontend)


def test_beit_index_needs_select_scatter_rescue_on_export(monkeypatch):
    from devicefit.convert import RESCUES, ConversionError

    monkeypatch.delitem(RESCUES, "select_scatter")
    with pytest.raises(ConversionError, match="select_scatter"):
        convert_and_compare(BeitIndex(), (torch.randn(5, 5),), "torch.export")


@pytest.mark.slow  # ~12 s: the whole tiny BEiT, converted twice
def test_tiny_beit_torchscript_needs_the_tensor_assign_rescue(monkeypatch):
    """In the whole model TorchScript hands coremltools a (1,) update for the 0-d slot; the rescue reshapes it."""
    from devicefit.convert import RESCUES, ConversionError
    from tests.corpus.families import BY_NAME

    module, example = BY_NAME["BEiT"].build()
    monkeypatch.delitem(RESCUES, "_internal_op_tensor_inplace_copy")
    with pytest.raises(ConversionError, match="updates tensor should have shape"):
        convert_and_compare(module, example, "torchscript")
    monkeypatch.undo()
    convert_and_compare(module, example, "torchscript", tol=1e-4)


class Fn(torch.nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


TORCHVISION_STYLE = {
    "bilinear_antialias_down": lambda x: F.interpolate(x, size=(3, 5), mode="bilinear", antialias=True),
    "bilinear_antialias_scale": lambda x: F.interpolate(x, scale_factor=0.5, mode="bilinear", antialias=True),
    "bicubic_antialias": lambda x: F.interpolate(x, size=(3, 12), mode="bicubic", antialias=True),
    "nearest_exact": lambda x: F.interpolate(x, size=(11, 7), mode="nearest-exact"),
    "channel_shuffle": lambda x: F.channel_shuffle(x, 2),
    "clamp_tensor_min": lambda x: torch.clamp(x, min=torch.zeros(1, 4, 1, 1)),
    "clamp_tensor_both": lambda x: torch.clamp(x, min=torch.full((10,), -0.5), max=x.mean(1, keepdim=True)),
    "clamp_scalars": lambda x: torch.clamp(x, -0.5, 0.5),
}


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("op", sorted(TORCHVISION_STYLE))
def test_torchvision_style_ops(op, frontend):
    torch.manual_seed(0)
    convert_and_compare(Fn(TORCHVISION_STYLE[op]), (torch.randn(1, 4, 8, 10),), frontend)


def test_stock_antialiased_bilinear_is_silently_wrong(monkeypatch):
    """Why the override exists: coremltools 9.0 converts it as plain bilinear, without an error."""
    from devicefit.convert import RESCUES

    monkeypatch.delitem(RESCUES, "_upsample_bilinear2d_aa")
    with pytest.raises(AssertionError):
        convert_and_compare(Fn(TORCHVISION_STYLE["bilinear_antialias_down"]), (torch.randn(1, 4, 8, 10),))


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("size", [(3, 5), (11, 7)])
def test_nearest_exact_copies_values(size, frontend):
    """nearest-exact copies input values, so inf, NaN and -0.0 stay where PyTorch puts them and nothing else
    changes. devicefit's translation was a product with one-hot matrices: ``0 * inf`` made NaN of every output
    in the row and column of an inf (the differential fuzzer, tests/interp/difffuzz.py, seed 5274)."""
    from tests.convert.elementwise_helpers import assert_close_elementwise, run_fn

    x = torch.randn(1, 2, 6, 4, generator=torch.Generator().manual_seed(0))
    x[0, 0, 1, 2], x[0, 1, 4, 0], x[0, 0, 0, 0], x[0, 1, 5, 3] = (
        float("inf"),
        float("nan"),
        -0.0,
        -float("inf"),
    )
    got, expected, rescued = run_fn(
        lambda t: F.interpolate(t, size=size, mode="nearest-exact"), (x,), frontend
    )
    assert "_upsample_nearest_exact2d" in rescued
    assert_close_elementwise(got[0], expected[0], rtol=0.0)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("size", [(3, 1), (1, 3), (1, 1), (2, 1)])
def test_antialiased_resize_to_one_row_or_column(size, mode):
    """PyTorch's antialiased CPU kernels weigh one axis differently when the other axis' output size is 1
    (``F.interpolate(x[1, 1, 4, 2], size=(3, 1), antialias=True)``: every output row gets the first row's weights,
    where the per-axis weights of a size-(3, 2) resize differ by row). The weights were taken per axis with the
    other axis left alone, so the package disagreed with PyTorch by up to 2x the output's scale (the
    differential fuzzer, tests/interp/difffuzz.py, seed 99); they are now PyTorch's response in the node's own
    sizes."""
    from tests.convert.elementwise_helpers import assert_close_elementwise, run_fn

    x = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(1))
    for align in (False, True):
        got, expected, rescued = run_fn(
            lambda t, a=align: F.interpolate(t, size=size, mode=mode, antialias=True, align_corners=a),
            (x,),
            "torchscript",
        )
        assert f"_upsample_{mode}2d_aa" in rescued
        assert_close_elementwise(got[0], expected[0], rtol=1e-5, atol=1e-6)
