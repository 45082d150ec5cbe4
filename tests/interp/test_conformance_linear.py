"""linear / matmul against numpy, through MIL programs built with coremltools' builder.

iOS17 lets one operand be a constant of another dtype (int32 x with an fp32 weight, fp32 x with an int32
weight); the result has the non-constant operand's dtype.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.interp import milprog

RNG = np.random.default_rng(0)
X_INT = RNG.integers(-9, 9, (2, 3, 4)).astype(np.int32)
X_FLOAT = RNG.standard_normal((2, 3, 4)).astype(np.float32)
W_FLOAT = np.array([[1.5, -2.0, 0.25, 3.0], [0.5, 1.0, -1.0, 2.0]], np.float32)  # [D_out=2, D_in=4]
W_INT = np.array([[2, -1, 0, 3], [1, 1, -2, 4]], np.int32)


def _expect(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x @ w.T with w first cast to x's dtype (what the non-constant operand's dtype means)."""
    return (x.astype(np.float64) @ w.astype(x.dtype).astype(np.float64).T).astype(x.dtype)


@pytest.mark.parametrize("x,w", [(X_INT, W_FLOAT), (X_FLOAT, W_INT), (X_INT, W_INT)])
@pytest.mark.parametrize("op", ["matmul", "linear"])
def test_ios17_mixed_dtype_constant_operand(op, x, w):
    from coremltools.converters.mil import Builder as mb

    def prog(x):
        if op == "matmul":
            return mb.matmul(x=x, y=w, transpose_y=True)
        return mb.linear(x=x, weight=w)

    out = milprog.run(prog, {"x": x}, op=op)
    expected = _expect(x, w)
    assert out.dtype == x.dtype
    np.testing.assert_allclose(out, expected, rtol=1e-6)


# ---------------------------------------------------------------- a 1-D x times a batched y
# The spec follows numpy.matmul ((K,) @ (B, K, N) -> (B, N)); coremltools 9.0 declares (1, N) (fixed upstream
# in coremltools PR #2719) and the Core ML runtime refuses to run the op (coremltools issue #2263). The
# interpreter refuses that program at load instead of returning (B, N) under a (1, N) declaration.


def test_rank1_x_batched_y_declared_1_by_n_is_refused_at_load():
    from coremltools.converters.mil import Builder as mb

    from devicefit.errors import ModelLoadError

    def prog(x, y):
        return mb.matmul(x=x, y=y)

    inputs = {"x": np.ones(4, np.float32), "y": np.ones((10, 4, 3), np.float32)}
    with pytest.raises(
        ModelLoadError, match=r"declares its output \(1, 3\), not the spec's \(10, 3\).*#2263"
    ):
        milprog.build(prog, inputs, target="iOS16")
    with pytest.raises(ModelLoadError, match=r"x\.unsqueeze"):
        milprog.build(prog, inputs, target="iOS17")  # the iOS17 kernel has the same check


def test_rank1_x_batched_y_from_a_pytorch_conversion_is_refused():
    import torch

    from devicefit import interp
    from devicefit.errors import ModelLoadError
    from tests.helpers import convert

    class VecTimesBatch(torch.nn.Module):
        def forward(self, x, y):
            return torch.matmul(x, y)

    mlmodel = convert(VecTimesBatch(), (torch.randn(4), torch.randn(2, 5, 4, 3)))
    with pytest.raises(ModelLoadError, match=r"1-D x \(4,\) by a batched y \(2, 5, 4, 3\)"):
        interp.load(mlmodel)


@pytest.mark.parametrize("y_shape", [(4, 3), (1, 4, 3), (1, 1, 4, 3)])
def test_rank1_x_where_the_declaration_is_numpys_runs_as_numpy(y_shape):
    from coremltools.converters.mil import Builder as mb

    x = RNG.standard_normal(4).astype(np.float32)
    y = RNG.standard_normal(y_shape).astype(np.float32)

    def prog(x, y):
        return mb.matmul(x=x, y=y)

    got = milprog.run(prog, {"x": x, "y": y}, target="iOS16")
    want = np.matmul(x, y)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
