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
