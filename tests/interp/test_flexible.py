"""Flexible input shapes: ct.RangeDim and ct.EnumeratedShapes inputs run at every allowed shape (against
PyTorch) and reject other shapes with a one-line InputError naming the input and what is allowed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devicefit import interp
from devicefit.errors import InputError
from tests.helpers import convert, rel_error


class SeqModel(torch.nn.Module):
    """Per-token linear layer, then attention-like pooling over the (flexible) sequence axis."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        h = torch.tanh(self.fc(x))
        weights = torch.softmax(h.sum(-1, keepdim=True), dim=1)
        return (weights * h).sum(1), h.reshape(x.shape[0], -1)


class ConvModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 5, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x)).mean((2, 3))


def _outputs(prog, feeds):
    out = prog.run(feeds, strict=True)
    return [out[o.name] for o in prog.outputs]


@pytest.fixture(scope="module")
def range_model():
    from devicefit._lazy import coremltools

    ct = coremltools()
    torch.manual_seed(0)
    module = SeqModel().eval()
    shape = ct.Shape((1, ct.RangeDim(lower_bound=2, upper_bound=16, default=4), 8))
    model = convert(module, torch.randn(1, 4, 8), inputs=[ct.TensorType(name="x", shape=shape)])
    return module, interp.load(model)


@pytest.mark.parametrize("length", [2, 4, 9, 16])
def test_range_dim_runs_at_allowed_lengths(range_model, length):
    module, prog = range_model
    (spec,) = prog.inputs
    assert spec.shape_range == [(1, 1), (2, 16), (8, 8)]
    x = torch.randn(1, length, 8)
    with torch.no_grad():
        expected = [t.numpy() for t in module(x)]
    got = _outputs(prog, {"x": x.numpy()})
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        assert rel_error(g, e) <= 1e-5


@pytest.mark.parametrize("shape, axis", [((1, 1, 8), 1), ((1, 17, 8), 1), ((2, 4, 8), 0)])
def test_range_dim_rejects_out_of_range(range_model, shape, axis):
    _, prog = range_model
    with pytest.raises(InputError) as info:
        prog.run({"x": np.zeros(shape, np.float32)})
    message = str(info.value)
    assert "\n" not in message
    assert "'x'" in message and f"axis {axis}" in message and "x: fp32[1x2..16x8]" in message


def test_range_dim_rejects_wrong_rank(range_model):
    _, prog = range_model
    with pytest.raises(InputError, match=r"input 'x' .*expected rank 3"):
        prog.run({"x": np.zeros((4, 8), np.float32)})


@pytest.fixture(scope="module")
def enumerated_model():
    from devicefit._lazy import coremltools

    ct = coremltools()
    torch.manual_seed(1)
    module = ConvModel().eval()
    shapes = ct.EnumeratedShapes(shapes=[(1, 3, 8, 8), (1, 3, 16, 16), (1, 3, 8, 24)], default=(1, 3, 8, 8))
    model = convert(module, torch.randn(1, 3, 8, 8), inputs=[ct.TensorType(name="x", shape=shapes)])
    return module, interp.load(model)


@pytest.mark.parametrize("shape", [(1, 3, 8, 8), (1, 3, 16, 16), (1, 3, 8, 24)])
def test_enumerated_shapes_run(enumerated_model, shape):
    module, prog = enumerated_model
    (spec,) = prog.inputs
    assert sorted(spec.enumerated_shapes) == sorted([(1, 3, 8, 8), (1, 3, 16, 16), (1, 3, 8, 24)])
    x = torch.randn(*shape)
    with torch.no_grad():
        expected = module(x).numpy()
    (got,) = _outputs(prog, {"x": x.numpy()})
    assert rel_error(got, expected) <= 1e-5


def test_enumerated_shapes_reject_others(enumerated_model):
    _, prog = enumerated_model
    with pytest.raises(InputError) as info:
        prog.run({"x": np.zeros((1, 3, 16, 8), np.float32)})
    message = str(info.value)
    assert "\n" not in message
    assert "'x'" in message and "1x3x16x8" in message
    for allowed in ("1x3x8x8", "1x3x16x16", "1x3x8x24"):
        assert allowed in message
