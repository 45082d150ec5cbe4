"""The MIL op spec, op by op, for dtypes, ranks and attribute values the kernel tests did not reach: each
case a MIL program built with coremltools' builder, run through the interpreter, against numpy.

A case is ``(target, inputs, build(mb, **vars), reference(**arrays))``; inputs are run-time inputs, so no
converter pass can fold the op away. Integer cases compare exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.interp import milprog

RNG = np.random.default_rng(7)
F = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
F5 = RNG.standard_normal((2, 1, 3, 4, 5)).astype(np.float32)
F1 = RNG.standard_normal(7).astype(np.float32)
I = RNG.integers(-9, 10, (3, 4)).astype(np.int32)
J = RNG.integers(-6, 7, (3, 4)).astype(np.int32)
J[J == 0] = 3  # divisors: no zeros
SQ = RNG.standard_normal((2, 5, 5)).astype(np.float32)
erf = np.vectorize(math.erf)


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _cumsum(x, axis, exclusive, reverse):
    y = np.flip(x, axis) if reverse else x
    out = np.cumsum(y, axis=axis, dtype=x.dtype)
    if exclusive:
        out = out - y
    return np.flip(out, axis) if reverse else out


def _band(x, lower, upper):
    i, j = np.indices(x.shape[-2:])
    keep = ((lower < 0) | (i - j <= lower)) & ((upper < 0) | (j - i <= upper))
    return np.where(keep, x, 0)


C = 3  # channels of F
ALPHA, BETA = np.float32([0.5, 1.5, 2.0]), np.float32([1.0, 0.5, 3.0])

CASES = {
    # ---- integer elementwise (T includes i32), negative operands: Python floor semantics
    "add_int": ("iOS15", {"x": I, "y": J}, lambda mb, x, y: mb.add(x=x, y=y), lambda x, y: x + y),
    "sub_int": ("iOS15", {"x": I, "y": J}, lambda mb, x, y: mb.sub(x=x, y=y), lambda x, y: x - y),
    "mul_int": ("iOS15", {"x": I, "y": J}, lambda mb, x, y: mb.mul(x=x, y=y), lambda x, y: x * y),
    "floor_div_int": (
        "iOS15",
        {"x": I, "y": J},
        lambda mb, x, y: mb.floor_div(x=x, y=y),
        lambda x, y: np.floor_divide(x, y),
    ),
    "mod_int": ("iOS15", {"x": I, "y": J}, lambda mb, x, y: mb.mod(x=x, y=y), lambda x, y: np.mod(x, y)),
    "floor_div_float": (
        "iOS15",
        {"x": F, "y": F + 3},
        lambda mb, x, y: mb.floor_div(x=x, y=y),
        lambda x, y: np.floor_divide(x, y),
    ),
    "mod_float": (
        "iOS15",
        {"x": F * 5, "y": F + 3},
        lambda mb, x, y: mb.mod(x=x, y=y),
        lambda x, y: np.mod(x, y),
    ),
    "maximum_int": (
        "iOS15",
        {"x": I, "y": J},
        lambda mb, x, y: mb.maximum(x=x, y=y),
        lambda x, y: np.maximum(x, y),
    ),
    "minimum_int": (
        "iOS15",
        {"x": I, "y": J},
        lambda mb, x, y: mb.minimum(x=x, y=y),
        lambda x, y: np.minimum(x, y),
    ),
    "pow_int": (
        "iOS15",
        {"x": I, "y": np.abs(J) % 4},
        lambda mb, x, y: mb.pow(x=x, y=y),
        lambda x, y: np.power(x, y),
    ),
    "less_int_broadcast": (
        "iOS15",
        {"x": I, "y": J[:1]},
        lambda mb, x, y: mb.less(x=x, y=y),
        lambda x, y: x < y,
    ),
    "abs_int": ("iOS15", {"x": I}, lambda mb, x: mb.abs(x=x), lambda x: np.abs(x)),
    "sign_int": ("iOS15", {"x": I}, lambda mb, x: mb.sign(x=x), lambda x: np.sign(x)),
    "square_int": ("iOS15", {"x": I}, lambda mb, x: mb.square(x=x), lambda x: np.square(x)),
    "exp2_int": ("iOS15", {"x": np.abs(I) % 8}, lambda mb, x: mb.exp2(x=x), lambda x: np.power(2, x)),
    "threshold_int": (
        "iOS15",
        {"x": I},
        lambda mb, x: mb.threshold(x=x, alpha=np.int32(2)),
        lambda x: np.maximum(x, 2),
    ),
    "round_half_to_even": (
        "iOS15",
        {"x": np.float32([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49, -0.51])},
        lambda mb, x: mb.round(x=x),
        lambda x: np.round(x),
    ),
    "clip": (
        "iOS15",
        {"x": F},
        lambda mb, x: mb.clip(x=x, alpha=-0.5, beta=0.7),
        lambda x: np.clip(x, -0.5, 0.7),
    ),
    # ---- reductions: ints, keep_dims, negative axes, all axes, rank 5
    "reduce_sum_int_keep_neg_axis": (
        "iOS15",
        {"x": I},
        lambda mb, x: mb.reduce_sum(x=x, axes=[-1], keep_dims=True),
        lambda x: x.sum(-1, keepdims=True, dtype=np.int32),
    ),
    "reduce_prod_int": (
        "iOS15",
        {"x": J},
        lambda mb, x: mb.reduce_prod(x=x, axes=[0], keep_dims=False),
        lambda x: x.prod(0, dtype=np.int32),
    ),
    "reduce_max_int_all_axes": (
        "iOS15",
        {"x": I},
        lambda mb, x: mb.reduce_max(x=x),
        lambda x: np.int32(x.max()),
    ),
    "reduce_min_int": ("iOS15", {"x": I}, lambda mb, x: mb.reduce_min(x=x, axes=[-2]), lambda x: x.min(-2)),
    "reduce_mean_rank5": (
        "iOS15",
        {"x": F5},
        lambda mb, x: mb.reduce_mean(x=x, axes=[-3, 1], keep_dims=True),
        lambda x: x.mean((-3, 1), keepdims=True),
    ),
    "reduce_l1": (
        "iOS15",
        {"x": F},
        lambda mb, x: mb.reduce_l1_norm(x=x, axes=[1, 3]),
        lambda x: np.abs(x).sum((1, 3)),
    ),
    "reduce_l2": (
        "iOS15",
        {"x": F},
        lambda mb, x: mb.reduce_l2_norm(x=x, axes=[-1], keep_dims=True),
        lambda x: np.sqrt((x * x).sum(-1, keepdims=True)),
    ),
    "reduce_log_sum_exp": (
        "iOS15",
        {"x": F * 20},
        lambda mb, x: mb.reduce_log_sum_exp(x=x, axes=[2]),
        lambda x: np.log(np.exp(x.astype(np.float64)).sum(2)),
    ),
    "reduce_sum_square": (
        "iOS15",
        {"x": F},
        lambda mb, x: mb.reduce_sum_square(x=x, axes=[0]),
        lambda x: (x * x).sum(0),
    ),
    "reduce_log_sum": (
        "iOS15",
        {"x": np.abs(F) + 0.1},
        lambda mb, x: mb.reduce_log_sum(x=x, axes=[1]),
        lambda x: np.log(x.sum(1)),
    ),
    "argmax_keep_dims": (
        "iOS15",
        {"x": F},
        lambda mb, x: mb.reduce_argmax(x=x, axis=-2, keep_dims=True),
        lambda x: np.argmax(x, -2)[:, :, None, :].astype(np.int32),
    ),
    "argmin_int": (
        "iOS15",
        {"x": I},
        lambda mb, x: mb.reduce_argmin(x=x, axis=0),
        lambda x: np.argmin(x, 0).astype(np.int32),
    ),
    # ---- pad: every mode, rank 5, asymmetric
    "pad_constant_value": (
        "iOS15",
        {"x": F},
        lambda mb, x: mb.pad(x=x, pad=np.int32([1, 0, 2, 3]), mode="constant", constant_val=-4.0),
        lambda x: np.pad(x, [(0, 0), (0, 0), (1, 0), (2, 3)], constant_values=-4.0),
    ),
    "pad_reflect": (
        "iOS15",
        {"x": F},
        lambda mb, x: mb.pad(x=x, pad=np.int32([2, 1, 3, 4]), mode="reflect"),
        lambda x: np.pad(x, [(0, 0), (0, 0), (2, 1), (3, 4)], mode="reflect"),
    ),
    "pad_replicate": (
        "iOS15",
        {"x": F},
        lambda mb, x: mb.pad(x=x, pad=np.int32([0, 2, 5, 1]), mode="replicate"),
        lambda x: np.pad(x, [(0, 0), (0, 0), (0, 2), (5, 1)], mode="edge"),
    ),
    "pad_constant_rank5_three_axes": (
        "iOS15",
        {"x": F5},
        lambda mb, x: mb.pad(x=x, pad=np.int32([1, 1, 0, 2, 2, 0]), mode="constant"),
        lambda x: np.pad(x, [(0, 0), (0, 0), (1, 1), (0, 2), (2, 0)]),
    ),
    "pad_reflect_rank1": (
        "iOS15",
        {"x": F1},
        lambda mb, x: mb.pad(x=x, pad=np.int32([3, 2]), mode="reflect"),
        lambda x: np.pad(x, (3, 2), mode="reflect"),
    ),
    # ---- activations with their parameters (per channel where the spec allows)
    "clamped_relu": (
        "iOS15",
        {"x": F * 3},
        lambda mb, x: mb.clamped_relu(x=x, alpha=0.2, beta=1.5),
        lambda x: np.where(x >= 0, np.minimum(1.5, x), np.minimum(1.5, 0.2 * x)),
    ),
    "elu": (
        "iOS15",
        {"x": F},
        lambda mb, x: mb.elu(x=x, alpha=0.7),
        lambda x: np.where(x > 0, x, 0.7 * (np.exp(x) - 1)),
    ),
    "leaky_relu": (
        "iOS15",
        {"x": F},
        lambda mb, x: mb.leaky_relu(x=x, alpha=0.3),
        lambda x: np.where(x >= 0, x, 0.3 * x),
    ),
    "linear_activation": (
        "iOS15",
        {"x": F},
        lambda mb, x: mb.linear_activation(x=x, alpha=-1.5, beta=0.25),
        lambda x: -1.5 * x + 0.25,
    ),
    "scaled_tanh": (
        "iOS15",
        {"x": F},
        lambda mb, x: mb.scaled_tanh(x=x, alpha=1.7, beta=0.6),
        lambda x: 1.7 * np.tanh(0.6 * x),
    ),
    "sigmoid_hard": (
        "iOS15",
        {"x": F * 4},
        lambda mb, x: mb.sigmoid_hard(x=x, alpha=0.3, beta=0.4),
        lambda x: np.clip(0.3 * x + 0.4, 0, 1),
    ),
    "softplus_parametric": (
        "iOS15",
        {"x": F},
        lambda mb, x: mb.softplus_parametric(x=x, alpha=ALPHA, beta=BETA),
        lambda x: ALPHA[:, None, None] * np.log1p(np.exp(BETA[:, None, None] * x)),
    ),
    "prelu": (
        "iOS15",
        {"x": F},
        lambda mb, x: mb.prelu(x=x, alpha=ALPHA),
        lambda x: np.where(x > 0, x, ALPHA[:, None, None] * x),
    ),
    "thresholded_relu": (
        "iOS15",
        {"x": F},
        lambda mb, x: mb.thresholded_relu(x=x, alpha=0.4),
        lambda x: np.where(x >= 0.4, x, 0),
    ),
    "gelu_exact": (
        "iOS15",
        {"x": F * 2},
        lambda mb, x: mb.gelu(x=x, mode="EXACT"),
        lambda x: 0.5 * x * (1 + erf(x / np.sqrt(2))),
    ),
    "gelu_tanh": (
        "iOS15",
        {"x": F * 2},
        lambda mb, x: mb.gelu(x=x, mode="TANH_APPROXIMATION"),
        lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))),
    ),
    "gelu_sigmoid": (
        "iOS15",
        {"x": F * 2},
        lambda mb, x: mb.gelu(x=x, mode="SIGMOID_APPROXIMATION"),
        lambda x: x * _sigmoid(1.702 * x),
    ),
    "softsign": ("iOS15", {"x": F}, lambda mb, x: mb.softsign(x=x), lambda x: x / (1 + np.abs(x))),
    "silu": ("iOS15", {"x": F}, lambda mb, x: mb.silu(x=x), lambda x: x * _sigmoid(x)),
    "relu6": ("iOS15", {"x": F * 5}, lambda mb, x: mb.relu6(x=x), lambda x: np.clip(x, 0, 6)),
    "softmax_rank1": (
        "iOS15",
        {"x": F1},
        lambda mb, x: mb.softmax(x=x, axis=0),
        lambda x: np.exp(x) / np.exp(x).sum(),
    ),
    # ---- gathers with batch_dims (iOS16)
    "gather_batch_dims": (
        "iOS16",
        {"x": F[0], "i": np.int32([[2, 0], [1, 1], [0, 3]])},
        lambda mb, x, i: mb.gather(x=x, indices=i, axis=2, batch_dims=1),
        lambda x, i: np.stack([x[b][:, i[b]] for b in range(3)]),
    ),
    "gather_nd_batch_dims": (
        "iOS16",
        {"x": F[0], "i": np.int32([[[1], [3]], [[0], [0]], [[2], [1]]])},
        lambda mb, x, i: mb.gather_nd(x=x, indices=i, batch_dims=1),
        lambda x, i: np.stack([x[b][i[b, :, 0]] for b in range(3)]),
    ),
    # ---- cumsum: every exclusive / reverse combination, ints
    **{
        f"cumsum_excl{int(ex)}_rev{int(rev)}": (
            "iOS15",
            {"x": I},
            lambda mb, x, ex=ex, rev=rev: mb.cumsum(x=x, axis=-1, exclusive=ex, reverse=rev),
            lambda x, ex=ex, rev=rev: _cumsum(x, -1, ex, rev),
        )
        for ex in (False, True)
        for rev in (False, True)
    },
    # ---- slice_by_index: masks and negative strides
    "slice_negative_stride": (
        "iOS15",
        {"x": F},
        lambda mb, x: mb.slice_by_index(
            x=x,
            begin=[0, 2, 3, 4],
            end=[2, 0, 0, 0],
            stride=[1, -1, -2, -1],
            end_mask=[False, False, True, True],
        ),
        lambda x: x[0:2, 2:0:-1, 3::-2, 4::-1],
    ),
    "slice_masks_and_squeeze": (
        "iOS15",
        {"x": F},
        lambda mb, x: mb.slice_by_index(
            x=x,
            begin=[1, 0, 1, 0],
            end=[2, 2, 0, 4],
            stride=[1, 1, 1, 2],
            begin_mask=[False, True, False, False],
            end_mask=[False, False, True, False],
            squeeze_mask=[True, False, False, False],
        ),
        lambda x: x[1, :2, 1:, 0:4:2],
    ),
    "slice_negative_begin_end": (
        "iOS15",
        {"x": F},
        lambda mb, x: mb.slice_by_index(x=x, begin=[-1, -3, 0, -4], end=[2, -1, 4, -1]),
        lambda x: x[-1:2, -3:-1, 0:4, -4:-1],
    ),
    # ---- band_part
    **{
        f"band_part_{lo}_{up}": (
            "iOS15",
            {"x": SQ},
            lambda mb, x, lo=lo, up=up: mb.band_part(x=x, lower=np.int32(lo), upper=np.int32(up)),
            lambda x, lo=lo, up=up: _band(x, lo, up),
        )
        for lo, up in [(-1, 0), (0, -1), (1, 2), (0, 0), (-1, -1)]
    },
    # ---- rank 5 layout ops
    "transpose_rank5": (
        "iOS15",
        {"x": F5},
        lambda mb, x: mb.transpose(x=x, perm=[4, 2, 0, 3, 1]),
        lambda x: x.transpose(4, 2, 0, 3, 1),
    ),
    "linear_rank1": (
        "iOS15",
        {"x": F1},
        lambda mb, x: mb.linear(x=x, weight=np.ones((2, 7), np.float32), bias=np.float32([1, -1])),
        lambda x: np.ones((2, 7)) @ x + np.float32([1, -1]),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_spec_case(name):
    target, inputs, build, reference = CASES[name]

    prog = milprog.named(build, list(inputs))
    out = milprog.run(prog, inputs, target=target)
    expected = np.asarray(reference(**inputs))
    if expected.ndim == 0:
        expected = expected.reshape(1)  # the runtime hands rank-0 outputs back with shape (1,)
    if expected.dtype.kind in "biu":
        assert out.shape == expected.shape, (out.shape, expected.shape)
        np.testing.assert_array_equal(out, expected)
    else:
        np.testing.assert_allclose(out, expected.astype(np.float32), rtol=1e-5, atol=1e-5)
