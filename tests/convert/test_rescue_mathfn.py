"""``asinh``, ``acosh``, ``erfinv`` (missing in coremltools 9.0) and ``softplus`` with a threshold (coremltools
ignores it) against PyTorch through the interpreter, element by element."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.convert.elementwise_helpers import assert_close_elementwise as _assert_close_elementwise
from tests.convert.elementwise_helpers import run_fn

FRONTENDS = ["torchscript", "torch.export"]
INF, NAN = float("inf"), float("nan")


def _run(fn, x: torch.Tensor, frontend: str, precision: str = "fp32") -> tuple[np.ndarray, np.ndarray, list]:
    outputs, reference, rescued = run_fn(fn, (x,), frontend, precision)
    return outputs[0], reference[0], rescued


WIDE = [
    0.0,
    -0.0,
    1e-30,
    -1e-20,
    1e-7,
    3e-4,
    -0.01,
    0.3,
    -0.99,
    1.0,
    1.0001,
    -1.7,
    2.0,
    25.0,
    -1e4,
    3e18,
    1e30,
]


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_asinh_is_accurate_from_tiny_to_huge(frontend):
    x = torch.tensor([*WIDE, INF, -INF, NAN])
    got, expected, rescued = _run(torch.asinh, x, frontend)
    assert "asinh" in rescued
    # 4 ulp: the textbook log(x + sqrt(x^2 + 1)) is 100% off at 1e-30 and inf at 1e30
    _assert_close_elementwise(got, expected, rtol=5e-7)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_acosh_is_accurate_near_one_and_large_and_nan_below_one(frontend):
    x = torch.tensor(
        [1.0, 1.0 + 2**-23, 1.00001, 1.3, 1.999, 2.0, 2.0001, 10.0, 1e5, 3e19, 1e38, INF, 0.5, -3.0, NAN]
    )
    got, expected, rescued = _run(torch.acosh, x, frontend)
    assert "acosh" in rescued
    _assert_close_elementwise(got, expected, rtol=5e-7)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_erfinv_follows_pytorchs_algorithm(frontend):
    y = torch.cat(
        [torch.linspace(-0.9999, 0.9999, 4001), torch.tensor([0.0, -0.0, 1e-30, 0.7, -0.7, 0.70001])]
    )
    y = torch.cat([y, torch.tensor([1.0, -1.0, 1.5, -2.0, NAN])])
    got, expected, rescued = _run(torch.erfinv, y, frontend)
    assert "erfinv" in rescued
    # PyTorch's own rational guess and two Newton steps: its vectorized CPU path rounds a few steps differently
    _assert_close_elementwise(got, expected, rtol=4e-6)


def test_erfinv_in_fp16_stays_finite_inside_the_range():
    y = torch.linspace(-0.999, 0.999, 101)
    got, expected, _ = _run(torch.erfinv, y, "torchscript", precision="fp16")
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, rtol=2e-2, atol=2e-3)  # fp16 storage of each step


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(("beta", "threshold"), [(2.0, 3.0), (1.0, 1.0), (0.5, 20.0)])
def test_softplus_threshold_returns_x_above_it(frontend, beta, threshold):
    x = torch.linspace(-8, 8, 97)
    got, expected, rescued = _run(lambda t: torch.nn.functional.softplus(t, beta, threshold), x, frontend)
    assert "softplus" in rescued
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_default_softplus_stays_with_coremltools():
    _, _, rescued = _run(torch.nn.functional.softplus, torch.linspace(-3, 3, 7), "torchscript")
    assert "softplus" not in rescued


@pytest.mark.parametrize("fn", [torch.asinh, torch.acosh])
def test_integer_input_gives_float_like_torch(fn):
    x = torch.tensor([1, 2, 5, 40], dtype=torch.int32)
    got, expected, _ = _run(fn, x, "torchscript")
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=5e-7)
