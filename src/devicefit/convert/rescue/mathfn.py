"""Math functions coremltools 9.0 lacks or mistranslates: ``asinh``, ``acosh``, ``erfinv``, ``erfc``, ``softplus``
with a threshold, ``log`` at 0, ``log1p`` and ``expm1`` near 0.

MIL has no ``asinh`` / ``acosh`` / ``log1p`` op, and the textbook ``log(x + sqrt(x^2 + 1))`` loses every digit for
small ``|x|`` (the log of a number near 1) and overflows ``x^2`` for large ones. The forms here keep fp32 accuracy
over the whole range and stay finite in fp16.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, frontend, select
from devicefit.convert.rescue._registry import DELEGATED, rescue

_LN2 = math.log(2.0)


def _float_input(context: Any, node: Any, count: int = 1) -> list:
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    inputs = list(frontend()._get_inputs(context, node, min_expected=count))
    if not types.is_float(inputs[0].dtype):  # torch computes these in the default float dtype
        inputs[0] = mb.cast(x=inputs[0], dtype="fp32")
    return inputs


def _log1p(u: Any) -> Any:
    """``log(1 + u)``, accurate for tiny ``u``: ``u * log(w) / (w - 1)`` with ``w = 1 + u``.

    NOTE: Goldberg's trick: the rounding of ``1 + u`` cancels between ``log(w)`` and ``w - 1``; where ``w``
    rounds to 1, ``log1p(u) = u`` to working precision.
    """
    from coremltools.converters.mil.mil import Builder as mb

    w = mb.add(x=u, y=1.0)
    wm1 = mb.sub(x=w, y=1.0)
    log_w = mb.log(x=w, epsilon=0.0)
    ratio = mb.real_div(x=log_w, y=select(cond=mb.equal(x=wm1, y=0.0), a=1.0, b=wm1))
    near = select(cond=mb.equal(x=wm1, y=0.0), a=u, b=mb.mul(x=u, y=ratio))
    # from w = 2 on log(w) loses nothing (and u = inf would make inf / inf)
    return select(cond=mb.greater(x=w, y=2.0), a=log_w, b=near)


@rescue(
    "asinh",
    "override: coremltools 9.0 registers asinh but fails (MIL has no asinh op: 'Builder' has no attribute 'asinh')",
    override=True,
)
def asinh(context: Any, node: Any) -> None:
    """``torch.asinh(x) = sign(x) * asinh(|x|)``.

    ``|x| <= 1``: ``log1p(a + a^2 / (1 + sqrt(1 + a^2)))``; ``|x| > 1``: ``log(a) + log(1 + sqrt(1 + 1/a^2))``, which
    never squares a large value (``x^2`` overflows fp16 at 256). ``-0`` and NaN are kept.
    """
    from coremltools.converters.mil.mil import Builder as mb

    x = _float_input(context, node)[0]
    a = mb.abs(x=x)
    small = mb.minimum(x=a, y=1.0)
    small_sq = mb.square(x=small)
    u = mb.add(x=small, y=mb.real_div(x=small_sq, y=mb.add(x=mb.sqrt(x=mb.add(x=small_sq, y=1.0)), y=1.0)))
    near = _log1p(u)
    big = mb.maximum(x=a, y=1.0)
    inv_sq = mb.square(x=mb.real_div(x=1.0, y=big))
    far = mb.add(x=mb.log(x=big), y=mb.log(x=mb.add(x=mb.sqrt(x=mb.add(x=inv_sq, y=1.0)), y=1.0)))
    magnitude = select(cond=mb.greater(x=a, y=1.0), a=far, b=near)
    # sign(x) * m loses -0 (sign(-0) = 0): copy x's sign by a select instead; NaN passes through select's b
    signed = select(cond=mb.less(x=x, y=0.0), a=mb.mul(x=magnitude, y=-1.0), b=magnitude)
    out = select(cond=mb.equal(x=a, y=0.0), a=x, b=signed, name=node.name)
    context.add(out, torch_name=node.name)


@rescue(
    "acosh",
    "override: coremltools 9.0 registers acosh but fails (MIL has no acosh op: 'Builder' has no attribute 'acosh')",
    override=True,
)
def acosh(context: Any, node: Any) -> None:
    """``torch.acosh(x)`` for ``x >= 1`` (NaN below, as PyTorch).

    ``x <= 2``: ``log1p(d + sqrt(d * (d + 2)))`` with ``d = x - 1`` (exact there), accurate near 1 where
    ``acosh`` behaves like ``sqrt(2 d)``; ``x > 2``: ``log(x) + log(1 + sqrt(1 - 1/x^2))``, no overflow.
    """
    from coremltools.converters.mil.mil import Builder as mb

    x = _float_input(context, node)[0]
    d = mb.sub(x=mb.minimum(x=x, y=2.0), y=1.0)  # negative below 1: the sqrt makes NaN, like PyTorch
    near = _log1p(mb.add(x=d, y=mb.sqrt(x=mb.mul(x=d, y=mb.add(x=d, y=2.0)))))
    big = mb.maximum(x=x, y=2.0)
    root = mb.sqrt(x=mb.sub(x=1.0, y=mb.square(x=mb.real_div(x=1.0, y=big))))
    far = mb.add(x=mb.log(x=big), y=mb.log(x=mb.add(x=root, y=1.0)))
    context.add(select(cond=mb.greater(x=x, y=2.0), a=far, b=near, name=node.name), torch_name=node.name)


# PyTorch's calc_erfinv (ATen/native/Math.h): a rational first guess, then two Newton steps on erf
_ERFINV_A = (0.886226899, -1.645349621, 0.914624893, -0.140543331)
_ERFINV_B = (-2.118377725, 1.442710462, -0.329097515, 0.012229801)
_ERFINV_C = (-1.970840454, -1.624906493, 3.429567803, 1.641345311)
_ERFINV_D = (3.543889200, 1.637067800)


def _horner(mb: Any, z: Any, coefficients: tuple[float, ...], last: float | None = None) -> Any:
    """``((c[n] z + c[n-1]) z + ...) z + c[0]``, then ``* z + last`` when ``last`` is given."""
    acc = mb.add(x=mb.mul(x=z, y=coefficients[-1]), y=coefficients[-2])
    for c in reversed(coefficients[:-2]):
        acc = mb.add(x=mb.mul(x=acc, y=z), y=c)
    if last is not None:
        acc = mb.add(x=mb.mul(x=acc, y=z), y=last)
    return acc


# Numerical Recipes' erfcc: erfc(z) = t exp(-z² + P(t)), t = 1 / (1 + z / 2), fractional error below 1.2e-7
_ERFC = (
    -1.26551223,
    1.00002368,
    0.37409196,
    0.09678418,
    -0.18628806,
    0.27886807,
    -1.13520398,
    1.48851587,
    -0.82215223,
    0.17087277,
)


@rescue("erfc", "coremltools 9.0 has no translation (torch.erfc; 1 - erf(x) loses the tail: 0 from x = 4)")
def erfc(context: Any, node: Any) -> None:
    """``torch.erfc(x)`` with a relative accuracy that holds in the tail (``1 - erf(x)`` is 0 from ``x ~ 4``).

    ``z = |x|``: ``t exp(-z² + P(t))`` (Numerical Recipes' Chebyshev fit, fractional error < 1.2e-7), and
    ``2 - erfc(z)`` for negative ``x``. NOTE: ``z²`` rounded in fp32 would cost ``z² * 6e-8`` relative (5e-6 at
    ``z = 9``), so ``exp(-z²)`` is ``exp(-h²) exp(-(z - h)(z + h))`` with ``h`` = ``z`` cut to 1/256 (``h²`` is
    exact in fp32). Measured within 5.8e-7 relative of PyTorch for every fp32 result above the smallest
    normal, -10 to 10; ``z`` is capped at 10.1 (erfc is 0 there in fp32) so ``inf`` gives 0 / 2, NaN stays NaN.
    """
    from coremltools.converters.mil.mil import Builder as mb

    x = _float_input(context, node)[0]
    z = mb.minimum(x=mb.abs(x=x), y=10.1)
    t = mb.real_div(x=1.0, y=mb.add(x=mb.mul(x=z, y=0.5), y=1.0))
    poly = _horner(mb, t, _ERFC)
    head = mb.mul(x=mb.floor(x=mb.mul(x=z, y=256.0)), y=1.0 / 256.0)
    rest = mb.mul(x=mb.sub(x=z, y=head), y=mb.add(x=z, y=head))
    tail = mb.mul(
        x=mb.mul(x=t, y=mb.exp(x=mb.mul(x=mb.mul(x=head, y=head), y=-1.0))),
        y=mb.exp(x=mb.sub(x=poly, y=rest)),
    )
    signed = select(cond=mb.less(x=x, y=0.0), a=mb.sub(x=2.0, y=tail), b=tail)
    out = select(cond=mb.not_equal(x=x, y=x), a=x, b=signed, name=node.name)
    context.add(out, torch_name=node.name)


@rescue(
    "erfinv", "coremltools 9.0 has no translation (torch.erfinv, e.g. truncated-normal initializers, flows)"
)
def erfinv(context: Any, node: Any) -> None:
    """``torch.erfinv(y)`` by PyTorch's own algorithm: a rational guess (central ``|y| <= 0.7`` or tail), two
    Newton steps ``x -= (erf(x) - y) / (2/sqrt(pi) exp(-x^2))``; ``±1`` gives ``±inf``, ``|y| > 1`` NaN."""
    from coremltools.converters.mil.mil import Builder as mb

    y = _float_input(context, node)[0]
    y_abs = mb.abs(x=y)
    # the central branch on y clipped into its range, the tail on |y| clipped below 1: no NaN in the unused branch
    yc = mb.clip(x=y, alpha=-0.7, beta=0.7)
    z = mb.square(x=yc)
    central = mb.real_div(x=mb.mul(x=yc, y=_horner(mb, z, _ERFINV_A)), y=_horner(mb, z, _ERFINV_B, last=1.0))
    ya_tail = mb.clip(x=y_abs, alpha=0.7, beta=float(np.nextafter(np.float32(1), np.float32(0))))
    zt = mb.sqrt(x=mb.mul(x=mb.log(x=mb.real_div(x=mb.sub(x=1.0, y=ya_tail), y=2.0)), y=-1.0))
    tail_abs = mb.real_div(x=_horner(mb, zt, _ERFINV_C), y=_horner(mb, zt, _ERFINV_D, last=1.0))
    tail = select(cond=mb.less(x=y, y=0.0), a=mb.mul(x=tail_abs, y=-1.0), b=tail_abs)
    x = select(cond=mb.less_equal(x=y_abs, y=0.7), a=central, b=tail)
    scale = float(np.float32(2.0) / np.float32(math.sqrt(math.pi)))
    for _ in range(2):
        slope = mb.mul(x=mb.exp(x=mb.mul(x=mb.square(x=x), y=-1.0)), y=scale)
        x = mb.sub(x=x, y=mb.real_div(x=mb.sub(x=mb.erf(x=x), y=y), y=slope))
    infinite = select(cond=mb.less(x=y, y=0.0), a=float("-inf"), b=float("inf"))
    x = select(cond=mb.equal(x=y_abs, y=1.0), a=infinite, b=x)
    out = select(cond=mb.greater(x=y_abs, y=1.0), a=float("nan"), b=x, name=node.name)
    context.add(out, torch_name=node.name)


@rescue(
    "softplus",
    "override: coremltools ignores softplus' threshold (PyTorch returns x where beta * x > threshold)",
    override=True,
)
def softplus(context: Any, node: Any) -> object:
    """``F.softplus(x, beta, threshold)``: ``log(1 + exp(beta x)) / beta``, and ``x`` itself where
    ``beta * x > threshold``. The default (beta 1, threshold 20) stays with coremltools (the difference is below
    fp32 rounding there)."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    beta = float(const_value(arg(context, node, inputs, 1, "beta"), 1.0))
    threshold = float(const_value(arg(context, node, inputs, 2, "threshold"), 20.0))
    if beta == 1.0 and threshold >= 20.0:
        frontend().softplus(context, node)
        return DELEGATED
    scaled = mb.mul(x=x, y=beta) if beta != 1.0 else x
    smooth = mb.softplus(x=scaled)
    if beta != 1.0:
        smooth = mb.real_div(x=smooth, y=beta)
    out = select(cond=mb.greater(x=scaled, y=threshold), a=x, b=smooth, name=node.name)
    context.add(out, torch_name=node.name)
    return None


@rescue(
    "log",
    "override: coremltools' MIL log keeps the op's default epsilon 1e-45, log(x + 1e-45): log(0) is -103.3 in fp32, "
    "not -inf (isinf(log(x)) masks came out False)",
    override=True,
)
def log(context: Any, node: Any) -> None:
    """``torch.log(x)`` with ``epsilon=0``: ``log(0) = -inf`` as in PyTorch (fp16 already rounded 1e-45 to 0)."""
    from coremltools.converters.mil.mil import Builder as mb

    x = _float_input(context, node)[0]
    context.add(mb.log(x=x, epsilon=0.0, name=node.name), torch_name=node.name)


@rescue(
    "log1p",
    "override: coremltools computes log1p as log(x + 1): 0 for |x| < 6e-8 and ~1e-3 relative off at 1e-4, silently",
    override=True,
)
def log1p(context: Any, node: Any) -> None:
    """``torch.log1p(x)`` by Goldberg's ``x * log(1 + x) / ((1 + x) - 1)``, exact to a few ulp down to tiny x."""
    from coremltools.converters.mil.mil import Builder as mb

    x = _float_input(context, node)[0]
    context.add(mb.identity(x=_log1p(x), name=node.name), torch_name=node.name)


@rescue(
    "expm1",
    "override: coremltools computes expm1 as exp(x) - 1: 0 for |x| < 6e-8 and ~1e-3 relative off at 1e-4, silently",
    override=True,
)
def expm1(context: Any, node: Any) -> None:
    """``torch.expm1(x)`` by Kahan's ``(u - 1) * x / log(u)`` with ``u = exp(x)``: ``x`` where ``u`` rounds to 1,
    ``u - 1`` where it is far from 1 (-1 and inf included)."""
    from coremltools.converters.mil.mil import Builder as mb

    x = _float_input(context, node)[0]
    u = mb.exp(x=x)
    um1 = mb.sub(x=u, y=1.0)
    log_u = mb.log(x=u, epsilon=0.0)
    safe_log = select(cond=mb.equal(x=log_u, y=0.0), a=1.0, b=log_u)
    kahan = mb.real_div(x=mb.mul(x=um1, y=x), y=safe_log)
    near = select(cond=mb.equal(x=um1, y=0.0), a=x, b=kahan)
    # far from 0 the plain difference is exact enough and Kahan's form would make inf / inf
    out = select(cond=mb.less(x=mb.abs(x=x), y=0.5), a=near, b=um1, name=node.name)
    context.add(out, torch_name=node.name)


def _snapped_log(mb: Any, x: Any, scale: float) -> Any:
    """``log(x) * scale`` (``scale = 1 / ln b``) snapped to the integer ``k != 0`` within 4 ulps of it.

    NOTE: the product is 1-2 ulps off, so log2(2^15) came out 14.999999 and ``floor(log2(x))`` gave 14 (PyTorch's
    ``std::log2`` is exact there). A true log within 4 ulps of a nonzero integer rounds to it or to a neighbour, so
    snapping costs at most those ulps elsewhere; near ``x = 1`` (``k = 0``) nothing is snapped.
    """
    r = mb.mul(x=mb.log(x=x, epsilon=0.0), y=scale)
    k = mb.round(x=r)
    near = mb.less_equal(x=mb.abs(x=mb.sub(x=r, y=k)), y=mb.mul(x=mb.abs(x=k), y=4.8e-7))
    snap = mb.logical_and(x=near, y=mb.not_equal(x=k, y=0.0))
    return select(cond=snap, a=k, b=r)


@rescue(
    "log2",
    "override: coremltools' log2 is log(x) / ln 2 with MIL log's default epsilon: log2(0) = -149, not -inf, and "
    "powers of two miss their integer (log2(2^15) = 14.999999, so floor(log2(x)) was 14), silently",
    override=True,
)
def log2(context: Any, node: Any) -> None:
    """``torch.log2``: ``log(x) / ln 2`` with ``epsilon=0``, exact integers at powers of two (:func:`_snapped_log`)."""
    from coremltools.converters.mil.mil import Builder as mb

    x = _float_input(context, node)[0]
    context.add(mb.identity(x=_snapped_log(mb, x, 1.0 / _LN2), name=node.name), torch_name=node.name)


@rescue(
    "log10",
    "override: coremltools' log10 is log(x) / ln 10 with MIL log's default epsilon: log10(0) = -44.9, not -inf, "
    "and powers of ten miss their integer (log10(1e-9) = -9.000001), silently",
    override=True,
)
def log10(context: Any, node: Any) -> None:
    """``torch.log10``: ``log(x) / ln 10`` with ``epsilon=0``, integers at powers of ten (:func:`_snapped_log`)."""
    from coremltools.converters.mil.mil import Builder as mb

    x = _float_input(context, node)[0]
    context.add(
        mb.identity(x=_snapped_log(mb, x, 1.0 / math.log(10.0)), name=node.name), torch_name=node.name
    )


@rescue(
    "rsqrt",
    "override: coremltools maps rsqrt to MIL rsqrt, whose epsilon defaults to 1e-12: 1 / sqrt(x + 1e-12) is 1e6 "
    "at 0 (PyTorch: inf) and 29% off at 1e-12, silently",
    override=True,
)
def rsqrt(context: Any, node: Any) -> None:
    """``torch.rsqrt(x) = 1 / sqrt(x)`` (``inf`` at 0, NaN below): MIL ``rsqrt`` with ``epsilon=0`` (still one
    ``rsqrt`` op: RMSNorm layers keep their Core ML op)."""
    from coremltools.converters.mil.mil import Builder as mb

    x = _float_input(context, node)[0]
    context.add(mb.rsqrt(x=x, epsilon=0.0, name=node.name), torch_name=node.name)
