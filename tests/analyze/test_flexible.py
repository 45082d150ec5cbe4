"""Flexible shapes: build enumerated / range inputs, validate every shape, report the NE implication."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from devicefit.analyze import flexible
from devicefit.errors import InputError
from tests.helpers import convert


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 4, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x)).mean(dim=-1)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return Net().eval()


def test_enumerated_shapes_validated_at_every_shape(net):
    inp = flexible.enumerated_input("x", [(1, 4, 8), (1, 4, 16), (1, 4, 32)], default=(1, 4, 16))
    ml = convert(net, torch.randn(1, 4, 16), inputs=[inp])
    report = flexible.validate_shapes(ml, net)
    assert sorted(c.shapes["x"] for c in report.checks) == [(1, 4, 8), (1, 4, 16), (1, 4, 32)]
    assert report.all_ok and all(c.rel_error < 1e-4 for c in report.checks)
    assert report.ne_implication == ["x: 3 enumerated shapes: can stay on the Neural Engine"]


def test_range_checked_at_ends_and_default(net):
    inp = flexible.range_input("x", [1, 4, (4, 64, 16)])
    ml = convert(net, torch.randn(1, 4, 16), inputs=[inp])
    report = flexible.validate_shapes(ml, net)
    assert [c.shapes["x"] for c in report.checks] == [(1, 4, 4), (1, 4, 16), (1, 4, 64)]
    assert report.all_ok
    assert "only the default shape (1, 4, 16)" in report.ne_implication[0]


def test_a_wrong_model_fails_the_check(net):
    inp = flexible.enumerated_input("x", [(1, 4, 8), (1, 4, 16)])
    ml = convert(net, torch.randn(1, 4, 8), inputs=[inp])
    other = Net().eval()  # different weights: every shape must disagree
    report = flexible.validate_shapes(ml, other)
    assert not report.all_ok and all(not c.ok for c in report.checks)


class Wrap(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def test_output_count_mismatch_and_blank_errors_fail_the_check(net):
    inp = flexible.enumerated_input("x", [(1, 4, 8), (1, 4, 16)])
    ml = convert(net, torch.randn(1, 4, 8), inputs=[inp])
    extra = flexible.validate_shapes(ml, Wrap(lambda x: (net(x), net(x))))  # torch has one more output
    assert not extra.all_ok and all("1 outputs, torch module 2" in c.error for c in extra.checks)

    def blank(x):
        raise ValueError()  # an exception with an empty message

    failed = flexible.validate_shapes(ml, Wrap(blank))
    assert [c.error for c in failed.checks] == ["ValueError", "ValueError"]


def test_input_builders_reject_bad_specs():
    with pytest.raises(InputError, match="rank"):
        flexible.enumerated_input("x", [(1, 2), (1, 2, 3)])
    with pytest.raises(InputError, match="default"):
        flexible.enumerated_input("x", [(1, 2)], default=(1, 3))
    with pytest.raises(InputError, match="bad range"):
        flexible.range_input("x", [(8, 4)])
    with pytest.raises(InputError, match="bad range"):
        flexible.range_input("x", [1, (4, -1, 2)])  # unbounded upper: default still >= lower
    assert flexible.range_input("x", [1, (4, -1, 8)]) is not None


def test_many_enumerated_shapes_implication():
    from devicefit.interp import TensorSpec

    spec = TensorSpec("x", "fp32", (1, 1), enumerated_shapes=[(1, i) for i in range(1, 131)])
    assert "> 128" in flexible.ne_implication([spec])[0]
    unbounded = TensorSpec("y", "fp32", (1, 8), shape_range=[(1, 1), (2, -1)])
    assert flexible.shapes_to_check(unbounded) == [(1, 2), (1, 8)]
    assert np.all(np.array(flexible.shapes_to_check(TensorSpec("z", "fp32", (2, 3)))) == [[2, 3]])
