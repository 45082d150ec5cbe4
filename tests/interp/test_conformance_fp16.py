"""fp16 emulation, op by op, against numpy float16 arithmetic (an independent rounding implementation).

Each program has fp16 inputs and fp16-typed ops and runs with ``precision="fp16"``. Elementwise add / mul
and cast must match numpy bit for bit: round to nearest even on ties, overflow to inf from 65520 on,
subnormals kept (not flushed), NaN propagated. Ops that accumulate or call libm (matmul, conv, softmax,
reduce_sum, exp) are compared with float64 math rounded once to float16, within one float16 ulp.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.interp import milprog

F16 = np.float16
TINY = 2.0**-24  # the smallest float16 subnormal

# pairs chosen to land on float16 rounding edges
X_EDGE = F16([65504, 65504, 65504, 1, 1, TINY, 2.0**-14, 0.5, -65504, np.inf, np.nan, 0, 3.0, 2048])
Y_EDGE = F16([16, 8, 15.99, 2.0**-11, 3 * 2.0**-11, TINY, -TINY, TINY, -32, -np.inf, 1, -0.0, 2.0**-10, 1])
#             ^65520:inf  ^65512:65504   ^tie->1 ^tie->1+2^-9          ^inf-inf:nan             ^2049: tie->2048


def bits(a: np.ndarray) -> np.ndarray:
    """float16 bit patterns with every NaN mapped to one pattern (NaN payloads are not compared)."""
    a = np.asarray(a, F16)
    out = a.view(np.uint16).copy()
    out[np.isnan(a)] = 0x7E00
    return out


def assert_bit_exact(out: np.ndarray, ref: np.ndarray) -> None:
    assert out.dtype == F16, out.dtype
    np.testing.assert_array_equal(bits(out), bits(ref))


def assert_within_one_ulp(out: np.ndarray, ref: np.ndarray) -> None:
    """|out - ref| <= one float16 ulp of ref; infinities and NaNs must match exactly."""
    assert out.dtype == F16, out.dtype
    out64, ref64 = out.astype(np.float64), ref.astype(np.float64)
    special = ~np.isfinite(ref64)
    np.testing.assert_array_equal(bits(out[special]), bits(ref[special]))
    ulp = np.spacing(np.abs(ref[~special])).astype(np.float64)
    assert np.all(np.abs(out64[~special] - ref64[~special]) <= ulp), np.abs(out64 - ref64).max()


def run16(fn, inputs):
    return milprog.run(fn, inputs, target="iOS16", precision="fp16")


@pytest.mark.parametrize("op", ["add", "mul", "sub"])
def test_binary_rounding_overflow_subnormals_nan(op):
    from coremltools.converters.mil import Builder as mb

    def prog(x, y):
        return getattr(mb, op)(x=x, y=y)

    rng = np.random.default_rng(0)
    x = np.concatenate([X_EDGE, F16(rng.standard_normal(64) * 300)])
    y = np.concatenate([Y_EDGE, F16(rng.standard_normal(64) * 300)])
    with np.errstate(all="ignore"):
        ref = {"add": np.add, "mul": np.multiply, "sub": np.subtract}[op](x, y)
    assert_bit_exact(run16(prog, {"x": x, "y": y}), ref)


def test_mul_into_and_below_the_subnormal_range():
    from coremltools.converters.mil import Builder as mb

    def prog(x, y):
        return mb.mul(x=x, y=y)

    x = F16([2.0**-12, 2.0**-13, 3 * 2.0**-13, 2.0**-7, 255.0, 300.0])
    y = F16([2.0**-12, 2.0**-12, 2.0**-12, 2.0**-10, 257.0, 300.0])  # 2^-24, tie->0, 1.5*2^-24, ..., overflow
    assert_bit_exact(run16(prog, {"x": x, "y": y}), x * y)


def test_cast_fp32_to_fp16_rounding_edges():
    from coremltools.converters.mil import Builder as mb

    def prog(x):
        return mb.cast(x=x, dtype="fp16")

    x = np.float32(
        [
            65519.99,
            65520.0,
            -65520.0,
            1 + 2.0**-11,
            1 + 3 * 2.0**-11,
            2.0**-25,
            2.0**-25 * 1.0001,
            1e-9,
            np.nan,
            7e4,
        ]
    )
    out = milprog.run(prog, {"x": x}, target="iOS16", precision="fp16", op="cast")
    assert_bit_exact(out, x.astype(F16))


RNG = np.random.default_rng(1)


def test_matmul_fp16():
    from coremltools.converters.mil import Builder as mb

    x, y = F16(RNG.standard_normal((3, 5, 16)) * 4), F16(RNG.standard_normal((3, 16, 7)) * 4)

    def prog(x, y):
        return mb.matmul(x=x, y=y)

    ref = (x.astype(np.float64) @ y.astype(np.float64)).astype(F16)
    assert_within_one_ulp(run16(prog, {"x": x, "y": y}), ref)


def test_conv_fp16():
    from coremltools.converters.mil import Builder as mb

    x = F16(RNG.standard_normal((1, 3, 6, 7)) * 3)
    w = F16(RNG.standard_normal((4, 3, 3, 3)))

    def prog(x):
        return mb.conv(x=x, weight=w, strides=[1, 1], pad_type="valid")

    windows = np.lib.stride_tricks.sliding_window_view(
        x.astype(np.float64), (3, 3), axis=(2, 3)
    )  # 1,3,4,5,3,3
    ref = np.einsum("bchwij,ocij->bohw", windows, w.astype(np.float64)).astype(F16)
    assert_within_one_ulp(milprog.run(prog, {"x": x}, target="iOS16", precision="fp16", op="conv"), ref)


def test_softmax_fp16():
    from coremltools.converters.mil import Builder as mb

    x = F16(np.concatenate([RNG.standard_normal((4, 9)) * 5, [[-65504, 0, 11, 11, 11, -3, 2, 60000, 1]]]))

    def prog(x):
        return mb.softmax(x=x, axis=-1)

    x64 = x.astype(np.float64)
    e = np.exp(x64 - x64.max(-1, keepdims=True))
    assert_within_one_ulp(run16(prog, {"x": x}), (e / e.sum(-1, keepdims=True)).astype(F16))


def test_reduce_sum_fp16_overflows_to_inf():
    from coremltools.converters.mil import Builder as mb

    x = F16(np.concatenate([RNG.standard_normal((3, 12)) * 100, np.full((1, 12), 6000.0)]))

    def prog(x):
        return mb.reduce_sum(x=x, axes=[1], keep_dims=False)

    ref = x.astype(np.float64).sum(1).astype(F16)
    assert np.isinf(ref[-1])  # 72000 does not fit
    assert_within_one_ulp(run16(prog, {"x": x}), ref)


def test_exp_fp16_overflow_and_subnormal_results():
    from coremltools.converters.mil import Builder as mb

    x = F16([-20.0, -17.0, -16.5, -9.7, 0.0, 1.0, 10.5, 11.08, 11.1, 12.0, np.nan, -np.inf, np.inf])

    def prog(x):
        return mb.exp(x=x)

    ref = np.exp(x.astype(np.float64)).astype(F16)
    assert ref[1] != 0 and ref[1] < 2.0**-14  # a subnormal result
    assert_within_one_ulp(run16(prog, {"x": x}), ref)
