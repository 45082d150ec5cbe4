"""``lgamma`` and ``digamma`` (coremltools 9.0 has neither) from MIL elementwise ops, over the whole float range.

``lgamma``: around its zeros at 1 and 2 a Stirling series or a Lanczos sum would cancel (their absolute error is
an ulp of ~10), so the core is ``lgamma(2 + z) = z R(z)`` on ``|z| <= 0.5`` with ``R`` a Chebyshev interpolant
computed here from ``math.lgamma`` (float64), reached by the recurrence ``lgamma(a) = lgamma(a - 1) + log(a - 1)``
up to 8.5, Stirling's series above, and the reflection formula below -0.5. ``digamma`` follows PyTorch's own
``calc_digamma`` step by step (recurrence up to 10, its asymptotic series, reflection).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import frontend, select
from devicefit.convert.rescue._registry import rescue
from devicefit.convert.rescue.mathfn import _log1p

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
# Stirling: lgamma(a) = (a - 1/2) log a - a + log(2 pi) / 2 + sum B_2k / (2k (2k - 1) a^(2k - 1))
_STIRLING = (1.0 / 12.0, -1.0 / 360.0, 1.0 / 1260.0, -1.0 / 1680.0)
_SHIFTS = 6  # recurrence steps from [1.5, 2.5) up to 8.5, where Stirling's 4 terms are below fp32's ulp


@functools.cache
def _core_coefficients(degree: int = 13) -> tuple[float, ...]:
    """Chebyshev coefficients of ``R(z) = lgamma(2 + z) / z`` on ``[-0.5, 0.5]`` (``R(0) = 1 - Euler's gamma``)."""

    # Chebyshev interpolation at the points of the first kind on [-1, 1], i.e. z = t / 2
    t = np.cos(np.pi * (np.arange(degree + 1) + 0.5) / (degree + 1))
    values = [math.lgamma(2.0 + v) / v if v != 0 else 1.0 - 0.5772156649015329 for v in t * 0.5]
    return tuple(float(c) for c in np.polynomial.chebyshev.chebfit(t, values, degree))


def _chebyshev(mb: Any, z: Any, coefficients: tuple[float, ...]) -> Any:
    """Clenshaw's recurrence for ``sum c_k T_k(2 z)`` (``z`` in ``[-0.5, 0.5]``)."""
    u = mb.mul(x=z, y=4.0)  # 2 * (2 z)
    b1: Any = coefficients[-1]
    b2: Any = 0.0
    for c in reversed(coefficients[1:-1]):
        b0 = mb.add(x=mb.sub(x=mb.mul(x=u, y=b1), y=b2), y=c)
        b2, b1 = b1, b0
    half_u = mb.mul(x=z, y=2.0)
    return mb.add(x=mb.sub(x=mb.mul(x=half_u, y=b1), y=b2), y=coefficients[0])


def _lgamma_core(mb: Any, z: Any) -> Any:
    """``lgamma(2 + z)`` for ``|z| <= 0.5``, relatively accurate through the zero at ``z = 0``."""
    return mb.mul(x=z, y=_chebyshev(mb, z, _core_coefficients()))


def _lgamma_from_half(mb: Any, a: Any) -> Any:
    """``lgamma(a)`` for ``a >= 0.5`` (finite ``a``; larger values are cut at 8.5 in the branches they skip)."""
    small = mb.minimum(x=a, y=8.5)
    steps = mb.floor(x=mb.sub(x=small, y=1.5))  # -1 .. 6 recurrence steps down to [1.5, 2.5)
    # NOTE: a - (n + 2) is exact (Sterbenz: a is within a factor 2 of n + 2); (a - 2) - n would round near a = 1
    z = mb.sub(x=small, y=mb.add(x=steps, y=2.0))
    product: Any = None
    for i in range(1, _SHIFTS + 1):
        factor = select(cond=mb.greater_equal(x=steps, y=float(i)), a=mb.sub(x=small, y=float(i)), b=1.0)
        product = factor if product is None else mb.mul(x=product, y=factor)
    # a < 1.5: lgamma(a) = lgamma(a + 1) - log(a); else + log((a - 1) ... (a - n)), at most 7.5 * ... * 2.5 < 65504
    shift = select(cond=mb.less(x=steps, y=0.0), a=mb.mul(x=mb.log(x=small), y=-1.0), b=mb.log(x=product))
    near = mb.add(x=_lgamma_core(mb, z), y=shift)
    big = mb.maximum(x=a, y=8.5)
    inv = mb.real_div(x=1.0, y=big)
    inv2 = mb.mul(x=inv, y=inv)
    series = mb.mul(x=inv, y=_poly(mb, inv2, _STIRLING))
    log_big = mb.log(x=big)
    # a (log a - 1) - log(a) / 2 does not overflow before lgamma itself does (4e36), unlike (a - 1/2) log a
    main = mb.sub(x=mb.mul(x=big, y=mb.sub(x=log_big, y=1.0)), y=mb.mul(x=log_big, y=0.5))
    far = mb.add(x=mb.add(x=main, y=_HALF_LOG_2PI), y=series)
    return select(cond=mb.less(x=a, y=8.5), a=near, b=far)


def _poly(mb: Any, z: Any, coefficients: tuple[float, ...]) -> Any:
    acc: Any = coefficients[-1]
    for c in reversed(coefficients[:-1]):
        acc = mb.add(x=mb.mul(x=z, y=acc), y=c)
    return acc


def _float_input(context: Any, node: Any) -> Any:
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    x = frontend()._get_inputs(context, node, min_expected=1)[0]
    return x if types.is_float(x.dtype) else mb.cast(x=x, dtype="fp32")


def _frac_distance(mb: Any, x: Any) -> Any:
    """``x`` minus an integer nearest to it, in ``[-0.5, 0.5]``, exact.

    NOTE: ``x - trunc(x)`` is exact (same sign, no bits below ``x``'s last); ``x - floor(x)`` is not for small
    negative ``x`` (``1 + x`` rounds), which cost ``pi / tan(pi x)`` half its value at ``x = -3e-8``.
    """
    f = mb.sub(x=x, y=select(cond=mb.less(x=x, y=0.0), a=mb.ceil(x=x), b=mb.floor(x=x)))
    f = select(cond=mb.greater(x=f, y=0.5), a=mb.sub(x=f, y=1.0), b=f)
    return select(cond=mb.less(x=f, y=-0.5), a=mb.add(x=f, y=1.0), b=f)


@rescue(
    "lgamma",
    "coremltools 9.0 has no translation (torch.lgamma: log-likelihoods of Poisson / negative binomial / Beta)",
    aliases=("special_gammaln",),
)
def lgamma(context: Any, node: Any) -> None:
    """``torch.lgamma(x)``: ``+inf`` at the poles (0, -1, -2, ...) and at ``±inf``, NaN kept.

    ``|x| < 0.5``: ``lgamma(2 + x) - log1p(x) - log|x|``; ``x >= 0.5``: :func:`_lgamma_from_half`;
    ``x <= -0.5``: ``log(pi / |sin(pi x)|) - lgamma(1 - x)`` with ``sin`` of the exact distance to the nearest
    integer (so large negative non-integers keep their digits and integers give ``log(0) = -inf``, i.e. ``+inf``).
    """
    from coremltools.converters.mil.mil import Builder as mb

    context.add(
        mb.identity(x=lgamma_of(mb, _float_input(context, node)), name=node.name), torch_name=node.name
    )


def lgamma_of(mb: Any, x: Any) -> Any:
    """``lgamma(x)`` of a float MIL var (see :func:`lgamma`)."""
    ax = mb.abs(x=x)
    tiny = mb.clip(x=x, alpha=-0.5, beta=0.5)  # the |x| < 0.5 branch on its own domain
    small = mb.sub(
        x=mb.sub(x=_lgamma_core(mb, tiny), y=_log1p(tiny)), y=mb.log(x=mb.abs(x=tiny), epsilon=0.0)
    )
    # the reflection's lgamma(1 - x) and the direct branch share one evaluation on a = max(x, 1 - x) >= 0.5
    a = select(cond=mb.less(x=x, y=0.0), a=mb.sub(x=1.0, y=x), b=x)
    finite_a = mb.minimum(x=a, y=3.0e38)  # inf would make inf - inf in Stirling's terms
    positive = _lgamma_from_half(mb, finite_a)
    sine = mb.abs(x=mb.sin(x=mb.mul(x=_frac_distance(mb, x), y=math.pi)))
    reflected = mb.sub(x=mb.sub(x=math.log(math.pi), y=mb.log(x=sine, epsilon=0.0)), y=positive)
    value = select(cond=mb.less(x=x, y=0.0), a=reflected, b=positive)
    value = select(cond=mb.less(x=ax, y=0.5), a=small, b=value)
    # ±inf give +inf (|x|); NaN stays NaN
    value = select(cond=mb.equal(x=ax, y=float("inf")), a=ax, b=value)
    return select(cond=mb.not_equal(x=x, y=x), a=x, b=value)


@rescue(
    "mvlgamma", "coremltools 9.0 has no translation (torch.mvlgamma: Wishart / multivariate t log-densities)"
)
def mvlgamma(context: Any, node: Any) -> None:
    """``torch.mvlgamma(x, p)``: PyTorch's ``sum_i lgamma(x + a_i) + p (p - 1) log(pi) / 4``, ``a_i`` from
    ``-(p - 1) / 2`` to 0 by halves, summed in that order. PyTorch raises when ``x <= (p - 1) / 2``; a Core ML
    model cannot, and returns lgamma's values there."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    x = _float_input(context, node)
    p = int(inputs[1].val)
    total: Any = None
    for i in range(p):
        term = lgamma_of(mb, mb.add(x=x, y=-(p - 1) * 0.5 + 0.5 * i))
        total = term if total is None else mb.add(x=total, y=term)
    out = mb.add(x=total, y=p * (p - 1) * math.log(math.pi) / 4.0, name=node.name)
    context.add(out, torch_name=node.name)


# PyTorch's calc_digamma (ATen/native/Math.h), float version
_PSI_10 = 2.25175258906672110764
_DIGAMMA_A = (
    8.33333333333333333333e-2,
    -2.10927960927960927961e-2,
    7.57575757575757575758e-3,
    -4.16666666666666666667e-3,
    3.96825396825396825397e-3,
    -8.33333333333333333333e-3,
    8.33333333333333333333e-2,
)


@rescue(
    "digamma",
    "coremltools 9.0 has no translation (torch.digamma: gradients of lgamma, Dirichlet / Beta entropies)",
    aliases=("special_digamma", "special_psi"),
)
def digamma(context: Any, node: Any) -> None:
    """``torch.digamma(x)`` by PyTorch's ``calc_digamma``: ``x < 0``: ``digamma(1 - x) - pi / tan(pi x)`` (NaN at
    negative integers and ``-inf``); then ``result -= 1 / x; x += 1`` while ``x < 10`` (10 unrolled steps, each
    masked once ``x`` reaches 10), ``PSI_10`` at exactly 10, else ``log x - 0.5 / x - z P(z)``, ``z = 1 / x²``.
    ``±0`` gives ``∓inf``."""
    from coremltools.converters.mil.mil import Builder as mb

    context.add(
        mb.identity(x=_digamma_of(mb, _float_input(context, node)), name=node.name), torch_name=node.name
    )


def _digamma_of(mb: Any, x: Any) -> Any:
    """``digamma(x)`` of a float MIL var (see :func:`digamma`)."""
    negative = mb.less(x=x, y=0.0)
    current = select(cond=negative, a=mb.sub(x=1.0, y=x), b=x)
    current = select(cond=mb.equal(x=current, y=0.0), a=1.0, b=current)  # x = ±0 is set apart below
    result: Any = None
    for _ in range(10):
        below = mb.less(x=current, y=10.0)
        step = select(cond=below, a=mb.real_div(x=1.0, y=current), b=0.0)
        result = mb.mul(x=step, y=-1.0) if result is None else mb.sub(x=result, y=step)
        current = mb.add(x=current, y=select(cond=below, a=1.0, b=0.0))
    z = mb.real_div(x=1.0, y=mb.mul(x=current, y=current))
    y = mb.mul(x=z, y=_poly(mb, z, tuple(reversed(_DIGAMMA_A))))
    tail = mb.sub(x=mb.sub(x=mb.log(x=current), y=mb.real_div(x=0.5, y=current)), y=y)
    positive = mb.add(x=result, y=select(cond=mb.equal(x=current, y=10.0), a=_PSI_10, b=tail))
    # pi / tan(pi r) with r the distance to the nearest integer: tan has period pi, and r is exact
    angle = mb.mul(x=_frac_distance(mb, x), y=math.pi)
    cotangent = mb.real_div(x=mb.mul(x=mb.cos(x=angle), y=math.pi), y=mb.sin(x=angle))
    value = select(cond=negative, a=mb.sub(x=positive, y=cotangent), b=positive)
    integer = mb.equal(x=x, y=mb.floor(x=x))  # -inf counts as an integer, as in PyTorch
    value = select(cond=mb.logical_and(x=negative, y=integer), a=np.float32(np.nan), b=value)
    value = select(cond=mb.equal(x=x, y=0.0), a=mb.real_div(x=-1.0, y=x), b=value)
    return select(cond=mb.not_equal(x=x, y=x), a=x, b=value)


def _trigamma_of(mb: Any, x: Any) -> Any:
    """PyTorch's float ``trigamma``: ``x < 0.5`` reflected (``pi² / sin²(pi x) - trigamma(1 - x)``), 6 steps of
    ``+ 1 / x²``, then ``(1 + 1 / (2x) + x⁻² (1/6 - x⁻² (1/30 - x⁻² / 42))) / x``."""
    pi = float(np.float32(math.pi))
    reflect = mb.less(x=x, y=0.5)
    sine = mb.sin(x=mb.mul(x=x, y=pi))
    result: Any = select(
        cond=reflect, a=mb.mul(x=mb.real_div(x=pi * pi, y=mb.mul(x=sine, y=sine)), y=-1.0), b=np.float32(0.0)
    )
    current = select(cond=reflect, a=mb.sub(x=1.0, y=x), b=x)
    for _ in range(6):
        result = mb.add(x=result, y=mb.real_div(x=1.0, y=mb.mul(x=current, y=current)))
        current = mb.add(x=current, y=1.0)
    ixx = mb.real_div(x=1.0, y=mb.mul(x=current, y=current))
    series = mb.mul(
        x=ixx, y=mb.sub(x=1.0 / 6.0, y=mb.mul(x=ixx, y=mb.sub(x=1.0 / 30.0, y=mb.mul(x=ixx, y=1.0 / 42.0))))
    )
    series = mb.add(x=mb.add(x=mb.real_div(x=1.0, y=mb.mul(x=current, y=2.0)), y=1.0), y=series)
    result = mb.add(x=result, y=mb.real_div(x=series, y=current))
    return select(cond=reflect, a=mb.mul(x=result, y=-1.0), b=result)


@rescue(
    "polygamma",
    "coremltools 9.0 has no translation (torch.polygamma: digamma / trigamma in Bayesian layers)",
    aliases=("special_polygamma",),
)
def polygamma(context: Any, node: Any) -> None:
    """``torch.polygamma(n, x)`` for ``n = 0`` (digamma) and ``n = 1`` (PyTorch's trigamma); higher orders (a
    Hurwitz zeta in PyTorch) are refused with a hint."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    inputs = frontend()._get_inputs(context, node, expected=2)
    n = int(inputs[0].val if hasattr(inputs[0], "val") else inputs[0])
    x = inputs[1] if types.is_float(inputs[1].dtype) else mb.cast(x=inputs[1], dtype="fp32")
    if n not in (0, 1):
        raise NotImplementedError(
            f"torch.polygamma of order {n}: only orders 0 (digamma) and 1 (trigamma) convert; compute higher "
            "orders outside the model"
        )
    value = _digamma_of(mb, x) if n == 0 else _trigamma_of(mb, x)
    context.add(mb.identity(x=value, name=node.name), torch_name=node.name)
