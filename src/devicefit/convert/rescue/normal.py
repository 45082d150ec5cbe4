"""Normal-distribution and entropy functions coremltools 9.0 lacks: ``special.erfcx``, ``special.ndtr``,
``special.log_ndtr``, ``special.xlog1py``, ``special.entr``.

All build on Numerical Recipes' ``erfc(z) = t exp(-z² + P(t))`` (``t = 1 / (1 + z / 2)``, fractional error below
1.2e-7 for every ``z >= 0``), whose scaled part ``t exp(P(t))`` *is* ``erfcx(z)``: no ``exp(z²)`` to overflow.
``ndtr`` keeps its relative accuracy in the lower tail (PyTorch's fp32 ``(1 + erf(x / sqrt 2)) / 2`` is 0 from
``x = -5.5``), with ``exp(-x² / 2)`` split so that the rounding of ``x²`` does not cost ``x² * 6e-8``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import frontend, select
from devicefit.convert.rescue._registry import rescue
from devicefit.convert.rescue.mathfn import _ERFC, _horner, _log1p

_SQRT_HALF = math.sqrt(0.5)


def _inputs(context: Any, node: Any, count: int) -> list:
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    inputs = list(frontend()._get_inputs(context, node, min_expected=count))[:count]
    return [v if types.is_float(v.dtype) else mb.cast(x=v, dtype="fp32") for v in inputs]


def _finish(context: Any, node: Any, x: Any, value: Any) -> None:
    """NaN in, NaN out; the result under the node's name."""
    from coremltools.converters.mil.mil import Builder as mb

    out = select(cond=mb.not_equal(x=x, y=x), a=x, b=value, name=node.name)
    context.add(out, torch_name=node.name)


def erfcx_nonnegative(mb: Any, z: Any) -> Any:
    """``exp(z²) erfc(z)`` for ``z >= 0`` (``+inf`` gives 0): ``t exp(P(t))``."""
    t = mb.real_div(x=1.0, y=mb.add(x=mb.mul(x=z, y=0.5), y=1.0))
    return mb.mul(x=t, y=mb.exp(x=_horner(mb, t, _ERFC)))


def _exp_half_square(mb: Any, a: Any) -> Any:
    """``exp(-a² / 2)`` for ``a >= 0``, relatively accurate: ``h`` = ``a`` cut to 1/256 (``h²`` is exact in fp32
    for ``a < 16``; above, the result is 0 anyway), ``exp(-h² / 2) exp(-(a - h)(a + h) / 2)``."""
    capped = mb.minimum(x=a, y=15.0)
    head = mb.mul(x=mb.floor(x=mb.mul(x=capped, y=256.0)), y=1.0 / 256.0)
    rest = mb.mul(x=mb.mul(x=mb.sub(x=capped, y=head), y=mb.add(x=capped, y=head)), y=-0.5)
    return mb.mul(x=mb.exp(x=mb.mul(x=mb.mul(x=head, y=head), y=-0.5)), y=mb.exp(x=rest))


def _upper_tail(mb: Any, x: Any) -> Any:
    """``ndtr(-|x|) = erfc(|x| / sqrt 2) / 2``, relatively accurate for every ``x``."""
    a = mb.abs(x=x)
    return mb.mul(
        x=mb.mul(x=erfcx_nonnegative(mb, mb.mul(x=a, y=_SQRT_HALF)), y=0.5), y=_exp_half_square(mb, a)
    )


@rescue("special_erfcx", "coremltools 9.0 has no translation (torch.special.erfcx: scaled complementary erf)")
def special_erfcx(context: Any, node: Any) -> None:
    """``x >= 0``: ``t exp(P(t))``; ``x < 0``: ``2 exp(x²) - erfcx(-x)`` as PyTorch computes it (``inf`` from -26.7)."""
    from coremltools.converters.mil.mil import Builder as mb

    x = _inputs(context, node, 1)[0]
    a = mb.abs(x=x)
    positive = erfcx_nonnegative(mb, a)
    negative = mb.sub(x=mb.mul(x=mb.exp(x=mb.mul(x=x, y=x)), y=2.0), y=positive)
    _finish(context, node, x, select(cond=mb.less(x=x, y=0.0), a=negative, b=positive))


@rescue("special_ndtr", "coremltools 9.0 has no translation (torch.special.ndtr: the normal CDF)")
def special_ndtr(context: Any, node: Any) -> None:
    """``x < 0``: ``erfc(|x| / sqrt 2) / 2`` (relatively accurate down to the fp32 underflow at -14); else one
    minus it."""
    from coremltools.converters.mil.mil import Builder as mb

    x = _inputs(context, node, 1)[0]
    tail = _upper_tail(mb, x)
    _finish(context, node, x, select(cond=mb.less(x=x, y=0.0), a=tail, b=mb.sub(x=1.0, y=tail)))


@rescue(
    "special_log_ndtr", "coremltools 9.0 has no translation (torch.special.log_ndtr: normal log-likelihoods)"
)
def special_log_ndtr(context: Any, node: Any) -> None:
    """PyTorch's (SciPy's) split: ``x < -1``: ``log(erfcx(-t) / 2) - t²`` with ``t = x / sqrt 2``; otherwise
    ``log1p(-ndtr(-x))`` with devicefit's accurate ``log1p`` and tail."""
    from coremltools.converters.mil.mil import Builder as mb

    x = _inputs(context, node, 1)[0]
    t = mb.mul(x=x, y=_SQRT_HALF)
    minus_t = mb.maximum(x=mb.mul(x=t, y=-1.0), y=0.5)  # the branch's own domain (-t > 0.707)
    far = mb.sub(x=mb.log(x=mb.mul(x=erfcx_nonnegative(mb, minus_t), y=0.5), epsilon=0.0), y=mb.mul(x=t, y=t))
    tail = _upper_tail(mb, x)
    upper = select(cond=mb.less(x=x, y=0.0), a=mb.sub(x=1.0, y=tail), b=tail)  # ndtr(-x)
    near = _log1p(mb.mul(x=upper, y=-1.0))
    _finish(context, node, x, select(cond=mb.less(x=x, y=-1.0), a=far, b=near))


@rescue("special_xlog1py", "coremltools 9.0 has no translation (torch.special.xlog1py)")
def special_xlog1py(context: Any, node: Any) -> None:
    """``x log1p(y)`` (devicefit's accurate ``log1p``), 0 where ``x == 0`` unless ``y`` is NaN."""
    from coremltools.converters.mil.mil import Builder as mb

    x, y = frontend().promote_input_dtypes(_inputs(context, node, 2))
    product = mb.mul(x=x, y=_log1p(y))
    zero = mb.logical_and(x=mb.equal(x=x, y=0.0), y=mb.equal(x=y, y=y))
    value = select(cond=zero, a=0.0, b=product)
    nan_x = mb.not_equal(x=x, y=x)
    context.add(select(cond=nan_x, a=x, b=value, name=node.name), torch_name=node.name)


@rescue("special_entr", "coremltools 9.0 has no translation (torch.special.entr: elementwise entropy)")
def special_entr(context: Any, node: Any) -> None:
    """``-x log x`` for ``x > 0``, 0 at 0, ``-inf`` below, NaN kept."""
    from coremltools.converters.mil.mil import Builder as mb

    x = _inputs(context, node, 1)[0]
    safe = select(cond=mb.greater(x=x, y=0.0), a=x, b=1.0)
    value = mb.mul(x=mb.mul(x=safe, y=mb.log(x=safe, epsilon=0.0)), y=-1.0)
    value = select(cond=mb.less(x=x, y=0.0), a=np.float32(-np.inf), b=value)
    _finish(context, node, x, value)


# PyTorch's calc_ndtri (Cephes ndtri): a rational function of (y - 1/2) in the centre, of 1 / sqrt(-2 log y) in
# the tails (two ranges)
_NDTRI_P0 = (-5.99633501014107895267e1, 9.80010754185999661536e1, -5.66762857469070293439e1,
             1.39312609387279679503e1, -1.23916583867381258016e0)  # fmt: skip
_NDTRI_Q0 = (1.0, 1.95448858338141759834e0, 4.67627912898881538453e0, 8.63602421390890590575e1,
             -2.25462687854119370527e2, 2.00260212380060660359e2, -8.20372256168333339912e1,
             1.59056225126211695515e1, -1.18331621121330003142e0)  # fmt: skip
_NDTRI_P1 = (4.05544892305962419923e0, 3.15251094599893866154e1, 5.71628192246421288162e1,
             4.40805073893200834700e1, 1.46849561928858024014e1, 2.18663306850790267539e0,
             -1.40256079171354495875e-1, -3.50424626827848203418e-2, -8.57456785154685413611e-4)  # fmt: skip
_NDTRI_Q1 = (1.0, 1.57799883256466749731e1, 4.53907635128879210584e1, 4.13172038254672030440e1,
             1.50425385692907503408e1, 2.50464946208309415979e0, -1.42182922854787788574e-1,
             -3.80806407691578277194e-2, -9.33259480895457427372e-4)  # fmt: skip
_NDTRI_P2 = (3.23774891776946035970e0, 6.91522889068984211695e0, 3.93881025292474443415e0,
             1.33303460815807542389e0, 2.01485389549179081538e-1, 1.23716634817820021358e-2,
             3.01581553508235416007e-4, 2.65806974686737550832e-6, 6.23974539184983293730e-9)  # fmt: skip
_NDTRI_Q2 = (1.0, 6.02427039364742014255e0, 3.67983563856160859403e0, 1.37702099489081330271e0,
             2.16236993594496635890e-1, 1.34204006088543189037e-2, 3.28014464682127739104e-4,
             2.89247864745380683936e-6, 6.79019408009981274425e-9)  # fmt: skip
_EXP_M2 = 0.13533528323661269189  # exp(-2)


def _polevl(mb: Any, x: Any, coefficients: tuple[float, ...]) -> Any:
    """Cephes' ``polevl``: ``c[0] x^n + ... + c[n]`` by Horner, highest first, in PyTorch's order."""
    acc: Any = coefficients[0]
    for c in coefficients[1:]:
        acc = mb.add(x=mb.mul(x=acc, y=x), y=c)
    return acc


@rescue("special_ndtri", "coremltools 9.0 has no translation (torch.special.ndtri: the inverse normal CDF)")
def special_ndtri(context: Any, node: Any) -> None:
    """``torch.special.ndtri(y)`` by PyTorch's ``calc_ndtri`` step by step: ``y`` above ``1 - exp(-2)`` is
    reflected (``1 - y``, as PyTorch rounds it), the centre ``|y - 1/2| <= 3/8`` a rational function of
    ``(y - 1/2)²``, the tails ``x0 - z P(z) / Q(z)`` with ``x = sqrt(-2 log y)``, ``x0 = x - log(x) / x``,
    ``z = 1 / x`` (two coefficient sets, split at ``x = 8``); 0 and 1 give ``∓inf``, outside ``[0, 1]`` NaN."""
    from coremltools.converters.mil.mil import Builder as mb

    y0 = _inputs(context, node, 1)[0]
    upper = mb.greater(x=y0, y=1.0 - _EXP_M2)
    y = select(cond=upper, a=mb.sub(x=1.0, y=y0), b=y0)
    # centre: y - 0.5 on y clipped into its range, so the unused branch stays finite
    yc = mb.sub(x=mb.clip(x=y, alpha=_EXP_M2, beta=1.0 - _EXP_M2), y=0.5)
    y2 = mb.mul(x=yc, y=yc)
    ratio = mb.real_div(x=_polevl(mb, y2, _NDTRI_P0), y=_polevl(mb, y2, _NDTRI_Q0))
    centre = mb.mul(x=mb.add(x=yc, y=mb.mul(x=yc, y=mb.mul(x=y2, y=ratio))), y=2.50662827463100050242)
    # tails on y clipped into (0, exp(-2)]
    yt = mb.clip(x=y, alpha=1.4e-45, beta=_EXP_M2)  # subnormals included (the smallest: 1.4e-45)
    x = mb.sqrt(x=mb.mul(x=mb.log(x=yt, epsilon=0.0), y=-2.0))
    x0 = mb.sub(x=x, y=mb.real_div(x=mb.log(x=x, epsilon=0.0), y=x))
    z = mb.real_div(x=1.0, y=x)
    near = mb.real_div(x=mb.mul(x=z, y=_polevl(mb, z, _NDTRI_P1)), y=_polevl(mb, z, _NDTRI_Q1))
    far = mb.real_div(x=mb.mul(x=z, y=_polevl(mb, z, _NDTRI_P2)), y=_polevl(mb, z, _NDTRI_Q2))
    tail = mb.sub(x=x0, y=select(cond=mb.less(x=x, y=8.0), a=near, b=far))
    tail = select(cond=upper, a=tail, b=mb.mul(x=tail, y=-1.0))
    value = select(cond=mb.greater(x=y, y=_EXP_M2), a=centre, b=tail)
    # y0 = 0 / 1: ∓inf as -log(0) makes them (no inf constant: fp16-safe constants would move it)
    infinite = mb.mul(x=mb.log(x=mb.abs(x=mb.sub(x=y0, y=y0)), epsilon=0.0), y=-1.0)  # +inf for finite y0
    value = select(cond=mb.equal(x=y0, y=1.0), a=infinite, b=value)
    value = select(cond=mb.equal(x=y0, y=0.0), a=mb.mul(x=infinite, y=-1.0), b=value)
    outside = mb.logical_or(x=mb.less(x=y0, y=0.0), y=mb.greater(x=y0, y=1.0))
    _finish(context, node, y0, select(cond=outside, a=np.float32(np.nan), b=value))
