"""FLOPs and latency bounds of flexible-shape models use real shapes (issue 12: they counted each flexible
axis as 1, below every shape the model accepts)."""

from __future__ import annotations

import pytest
import torch

from devicefit.analyze import roofline
from devicefit.analyze.flops import function_costs, resolve_function, shape_of, total
from devicefit.analyze.shapes import costs_at, default_costs, flexible_cases

CONV_FLOPS_PER_PIXEL = 2 * 8 * 3 * 3 * 3 + 8  # per output pixel: 2 x MACs (8 out x 3 in x 3 x 3) + bias


def _conv_flops(costs) -> int:
    return next(c.flops for c in costs if c.op_type == "conv")


@pytest.fixture(scope="module")
def models(ct):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU()).eval()
    traced = torch.jit.trace(net, torch.randn(1, 3, 16, 16))
    shapes = {
        "range": ct.Shape((1, 3, ct.RangeDim(8, 64, default=16), ct.RangeDim(8, 64, default=16))),
        "enumerated": ct.EnumeratedShapes(shapes=[(1, 3, 16, 16), (1, 3, 32, 32)], default=(1, 3, 16, 16)),
    }
    return {
        kind: ct.convert(
            traced,
            inputs=[ct.TensorType(name="x", shape=shape)],
            convert_to="mlprogram",
            minimum_deployment_target=ct.target.iOS17,
        )
        for kind, shape in shapes.items()
    }


@pytest.fixture(scope="module")
def ct():
    from devicefit._lazy import coremltools

    return coremltools()


@pytest.mark.parametrize("kind", ["range", "enumerated"])
def test_latency_bound_flops_at_the_default_shape(models, kind):
    bounds = roofline.latency_bounds(models[kind], "iphone-12")
    conv = _conv_flops(default_costs(resolve_function(models[kind])))
    assert conv == CONV_FLOPS_PER_PIXEL * 16 * 16
    assert bounds.flops >= conv  # was counted at 1x1 pixels before


def test_range_cases_default_and_upper_bound(models):
    resolved = resolve_function(models["range"])
    cases = flexible_cases(resolved)
    assert [(c.label, c.shapes["x"]) for c in cases] == [
        ("default", (1, 3, 16, 16)),
        ("upper bound", (1, 3, 64, 64)),
    ]
    upper = costs_at(resolved.function, cases[1].shapes)
    assert upper is not None and _conv_flops(upper) == CONV_FLOPS_PER_PIXEL * 64 * 64


def test_enumerated_cases_each_shape_and_the_program_is_restored(models):
    from devicefit import interp

    program = interp.load(models["enumerated"])
    resolved = resolve_function(program)
    cases = flexible_cases(resolved)
    assert [c.shapes["x"] for c in cases] == [(1, 3, 16, 16), (1, 3, 32, 32)]
    big = costs_at(resolved.function, cases[1].shapes)
    assert big is not None and _conv_flops(big) == CONV_FLOPS_PER_PIXEL * 32 * 32
    # the shared pymil function is left as it was: symbolic again for the other analyses
    assert any(d < 0 for d in shape_of(resolved.function.inputs["x"]))
    assert total(function_costs(resolved.function)).symbolic


def test_fixed_shape_model_is_unchanged(ct):
    net = torch.nn.Linear(4, 2).eval()
    ml = ct.convert(
        torch.jit.trace(net, torch.randn(1, 4)),
        inputs=[ct.TensorType(name="x", shape=(1, 4))],
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS17,
    )
    resolved = resolve_function(ml)
    assert flexible_cases(resolved) == []
    assert default_costs(resolved) == function_costs(resolved.function)
