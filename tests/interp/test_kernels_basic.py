"""Elementwise, activation, linear-algebra, reduction and cast kernels, each on its own against numpy.

Each case is written once (kernel name, numpy reference, how to make inputs) and runs over several shapes
and dtypes. References are numpy (float64 where it matters), not torch, so a kernel that merely forwards
to the wrong torch function cannot agree with itself.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from devicefit.interp.registry import get_kernel

SHAPES = [(7,), (2, 3), (2, 3, 4), (1, 4, 5, 6)]
RNG = np.random.default_rng(0)


def kernel(op: str, opset: int = 18):
    k = get_kernel(op, opset)
    assert k is not None, f"no kernel for {op}"
    return k.fn


def _rand(shape, dtype, low=-3.0, high=3.0):
    if np.dtype(dtype).kind == "f":
        return RNG.uniform(low, high, shape).astype(dtype)
    if np.dtype(dtype) == np.bool_:
        return RNG.integers(0, 2, shape).astype(bool)
    return RNG.integers(int(low), int(high) + 1, shape).astype(dtype)


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def _close(actual, expected, rtol=1e-5, atol=1e-6):
    actual = actual.numpy() if isinstance(actual, torch.Tensor) else np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape
    if expected.dtype.kind in "biu":
        np.testing.assert_array_equal(actual, expected)
    else:
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


# ------------------------------------------------------------------ binary
BINARY = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "equal": np.equal,
    "not_equal": np.not_equal,
    "less": np.less,
    "less_equal": np.less_equal,
    "greater": np.greater,
    "greater_equal": np.greater_equal,
}


@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_binary_with_broadcast(op, shape, dtype):
    x = _rand(shape, dtype)
    y = _rand(shape[-1:], dtype)  # broadcast along the last axis
    _close(kernel(op)(_t(x), _t(y)), BINARY[op](x, y))


@pytest.mark.parametrize("shape", SHAPES)
def test_division_family(shape):
    x, y = _rand(shape, np.float32), _rand(shape, np.float32, 0.5, 3.0)
    _close(kernel("real_div")(_t(x), _t(y)), x / y)
    _close(kernel("floor_div")(_t(x), _t(y)), np.floor_divide(x, y))
    _close(kernel("mod")(_t(x), _t(y)), np.mod(x, y), atol=1e-5)
    xi, yi = _rand(shape, np.int32, -9, 9), _rand(shape, np.int32, 1, 4)
    # integer real_div truncates toward zero (coremltools' value inference: true division, cast to int32)
    _close(kernel("real_div")(_t(xi), _t(yi)), np.trunc(xi / yi).astype(np.int32))
    _close(
        kernel("real_div")(_t(np.array([-7, 7, -1], np.int32)), _t(np.array([2, 2, 3], np.int32))), [-3, 3, 0]
    )
    _close(kernel("pow")(_t(np.abs(x)), _t(y)), np.abs(x) ** y, rtol=1e-4)
    _close(kernel("pow")(_t(x), torch.tensor(2.0)), x * x)
    _close(kernel("pow")(_t(np.abs(x)), torch.tensor(0.5)), np.sqrt(np.abs(x)))


@pytest.mark.parametrize("op", ["logical_and", "logical_or", "logical_xor"])
def test_logical(op):
    x, y = _rand((3, 4), np.bool_), _rand((3, 4), np.bool_)
    _close(kernel(op)(_t(x), _t(y)), getattr(np, op)(x, y))
    _close(kernel("logical_not")(_t(x)), ~x)


# ------------------------------------------------------------------ unary
def _erf(a):
    return np.vectorize(math.erf)(a.astype(np.float64))


UNARY = {
    "abs": (np.abs, (-3, 3)),
    "sqrt": (np.sqrt, (0.1, 4)),
    "exp": (np.exp, (-3, 3)),
    "exp2": (np.exp2, (-3, 3)),
    "square": (np.square, (-3, 3)),
    "sign": (np.sign, (-3, 3)),
    "floor": (np.floor, (-3, 3)),
    "ceil": (np.ceil, (-3, 3)),
    "round": (np.round, (-3, 3)),
    "sin": (np.sin, (-3, 3)),
    "cos": (np.cos, (-3, 3)),
    "tan": (np.tan, (-1, 1)),
    "asin": (np.arcsin, (-0.9, 0.9)),
    "acos": (np.arccos, (-0.9, 0.9)),
    "atan": (np.arctan, (-3, 3)),
    "sinh": (np.sinh, (-2, 2)),
    "cosh": (np.cosh, (-2, 2)),
    "tanh": (np.tanh, (-3, 3)),
    "atanh": (np.arctanh, (-0.9, 0.9)),
    "erf": (_erf, (-3, 3)),
    "relu": (lambda a: np.maximum(a, 0), (-3, 3)),
    "relu6": (lambda a: np.clip(a, 0, 6), (-8, 8)),
    "sigmoid": (lambda a: 1 / (1 + np.exp(-a)), (-6, 6)),
    "silu": (lambda a: a / (1 + np.exp(-a)), (-6, 6)),
    "softplus": (lambda a: np.log1p(np.exp(a)), (-6, 6)),
    "softsign": (lambda a: a / (1 + np.abs(a)), (-6, 6)),
}


@pytest.mark.parametrize("op", sorted(UNARY))
@pytest.mark.parametrize("shape", SHAPES)
def test_unary(op, shape):
    ref, (lo, hi) = UNARY[op]
    x = _rand(shape, np.float32, lo, hi)
    _close(kernel(op)(_t(x)), ref(x.astype(np.float64)).astype(np.float32), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_unary_with_parameters(shape):
    x = _rand(shape, np.float32)
    pos = np.abs(x) + 0.5
    _close(kernel("rsqrt")(_t(pos), epsilon=1e-3), 1 / np.sqrt(pos + 1e-3))
    _close(kernel("inverse")(_t(pos), epsilon=1e-4), 1 / (pos + 1e-4))
    _close(kernel("log")(_t(pos), epsilon=1e-6), np.log(pos + 1e-6), rtol=1e-5, atol=1e-6)
    _close(kernel("threshold")(_t(x), alpha=0.5), np.maximum(x, 0.5))
    _close(kernel("clip")(_t(x), alpha=-1.0, beta=2.0), np.clip(x, -1, 2))
    _close(kernel("leaky_relu")(_t(x), alpha=0.1), np.where(x >= 0, x, 0.1 * x))
    _close(kernel("elu")(_t(x), alpha=0.7), np.where(x > 0, x, 0.7 * (np.exp(x) - 1)), rtol=1e-5, atol=1e-6)
    _close(kernel("sigmoid_hard")(_t(x), alpha=0.2, beta=0.5), np.clip(0.2 * x + 0.5, 0, 1))
    _close(kernel("thresholded_relu")(_t(x), alpha=0.5), np.where(x > 0.5, x, 0))
    _close(kernel("clamped_relu")(_t(x), alpha=0.1, beta=1.5), np.minimum(np.where(x >= 0, x, 0.1 * x), 1.5))
    _close(kernel("scaled_tanh")(_t(x), alpha=2.0, beta=0.5), 2 * np.tanh(0.5 * x), rtol=1e-5)
    _close(kernel("linear_activation")(_t(x), alpha=2.0, beta=-1.0), 2 * x - 1)
    exact = 0.5 * x * (1 + _erf(x / np.sqrt(2)))
    _close(kernel("gelu")(_t(x), mode="EXACT"), exact, rtol=1e-5, atol=1e-6)
    tanh_approx = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    _close(kernel("gelu")(_t(x), mode="TANH_APPROXIMATION"), tanh_approx, rtol=1e-5, atol=1e-6)
    _close(kernel("gelu")(_t(x), mode="SIGMOID_APPROXIMATION"), x / (1 + np.exp(-1.702 * x)), rtol=1e-5)


@pytest.mark.parametrize("shape", [(2, 3, 4), (1, 4, 5, 6)])
def test_per_channel_activations(shape):
    x = _rand(shape, np.float32)
    c = shape[1]
    alpha, beta = _rand((c,), np.float32, 0.1, 1.0), _rand((c,), np.float32, 0.5, 2.0)
    bshape = [1, c] + [1] * (len(shape) - 2)
    a, b = alpha.reshape(bshape), beta.reshape(bshape)
    _close(kernel("prelu")(_t(x), _t(alpha)), np.where(x >= 0, x, x * a))
    _close(kernel("softplus_parametric")(_t(x), _t(alpha), _t(beta)), a * np.log1p(np.exp(b * x)), rtol=1e-5)


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax(axis):
    x = _rand((3, 4, 5), np.float32, -10, 10)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    _close(kernel("softmax")(_t(x), axis=axis), e / e.sum(axis=axis, keepdims=True))


# ------------------------------------------------------------------ linear algebra
@pytest.mark.parametrize("batch", [(), (2,), (2, 3)])
def test_linear_and_matmul(batch):
    x, w, b = _rand((*batch, 5, 4), np.float32), _rand((6, 4), np.float32), _rand((6,), np.float32)
    _close(kernel("linear")(_t(x), _t(w), _t(b)), x @ w.T + b, rtol=1e-5, atol=1e-5)
    _close(kernel("linear")(_t(x), _t(w)), x @ w.T, rtol=1e-5, atol=1e-5)
    y = _rand((*batch, 4, 3), np.float32)
    _close(kernel("matmul")(_t(x), _t(y)), x @ y, rtol=1e-5, atol=1e-5)
    yt = np.ascontiguousarray(np.swapaxes(y, -1, -2))
    xt = np.ascontiguousarray(np.swapaxes(x, -1, -2))
    _close(kernel("matmul")(_t(xt), _t(yt), transpose_x=True, transpose_y=True), x @ y, rtol=1e-5, atol=1e-5)
    xi, yi = _rand((3, 4), np.int32, -3, 3), _rand((4, 2), np.int32, -3, 3)
    _close(kernel("matmul")(_t(xi), _t(yi)), xi @ yi)


def test_einsum():
    a, b = _rand((2, 3, 4), np.float32), _rand((2, 4, 5), np.float32)
    _close(
        kernel("einsum")([_t(a), _t(b)], equation="bij,bjk->bik"), np.einsum("bij,bjk->bik", a, b), rtol=1e-5
    )


# ------------------------------------------------------------------ reductions
REDUCE = {
    "reduce_sum": np.sum,
    "reduce_mean": np.mean,
    "reduce_prod": np.prod,
    "reduce_max": np.max,
    "reduce_min": np.min,
    "reduce_l1_norm": lambda a, axis, keepdims: np.sum(np.abs(a), axis=axis, keepdims=keepdims),
    "reduce_l2_norm": lambda a, axis, keepdims: np.sqrt(np.sum(a * a, axis=axis, keepdims=keepdims)),
    "reduce_sum_square": lambda a, axis, keepdims: np.sum(a * a, axis=axis, keepdims=keepdims),
    "reduce_log_sum": lambda a, axis, keepdims: np.log(np.sum(a, axis=axis, keepdims=keepdims)),
    "reduce_log_sum_exp": lambda a, axis, keepdims: np.log(np.sum(np.exp(a), axis=axis, keepdims=keepdims)),
}


@pytest.mark.parametrize("op", sorted(REDUCE))
@pytest.mark.parametrize(("axes", "keep"), [([1], False), ([0, 2], True), ([-1], True), (None, False)])
def test_reductions(op, axes, keep):
    x = _rand((3, 4, 5), np.float32, 0.5, 1.5)  # positive: log_sum and prod stay defined and finite
    np_axes = None if axes is None else tuple(axes)
    expected = REDUCE[op](x.astype(np.float64), axis=np_axes, keepdims=keep)
    _close(kernel(op)(_t(x), axes=axes, keep_dims=keep), np.asarray(expected, np.float32), rtol=1e-5)


def test_integer_reductions_keep_integers():
    x = _rand((3, 4), np.int32, -5, 5)
    _close(kernel("reduce_sum")(_t(x), axes=[1]), x.sum(axis=1).astype(np.int32))
    _close(kernel("reduce_max")(_t(x), axes=[0], keep_dims=True), x.max(axis=0, keepdims=True))


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("keep", [False, True])
def test_arg_reductions(axis, keep):
    x = _rand((3, 4, 5), np.float32)
    for op, ref in (("reduce_argmax", np.argmax), ("reduce_argmin", np.argmin)):
        out = kernel(op)(_t(x), axis=axis, keep_dims=keep)
        expected = ref(x, axis=axis)
        if keep:
            expected = np.expand_dims(expected, axis)
        assert out.dtype == torch.int32
        _close(out, expected.astype(np.int32))


# ------------------------------------------------------------------ cast
@pytest.mark.parametrize(
    ("dtype", "expected_torch"),
    [("fp16", torch.float32), ("fp32", torch.float32), ("int32", torch.int32), ("bool", torch.bool)],
)
def test_cast(dtype, expected_torch):
    x = np.array([-2.7, -0.5, 0.0, 0.4, 1.6, 3.0], np.float32)
    out = kernel("cast")(_t(x), dtype=dtype)
    assert out.dtype == expected_torch
    expected = {"fp16": x, "fp32": x, "int32": np.trunc(x).astype(np.int32), "bool": x != 0}[dtype]
    _close(out, expected)


def test_cast_int_to_float():
    x = np.array([-3, 0, 7], np.int32)
    _close(kernel("cast")(_t(x), dtype="fp32"), x.astype(np.float32))
