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

from devicefit.convert.rescue._mil import frontend
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

    out = mb.select(cond=mb.not_equal(x=x, y=x), a=x, b=value, name=node.name)
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
    _finish(context, node, x, mb.select(cond=mb.less(x=x, y=0.0), a=negative, b=positive))


@rescue("special_ndtr", "coremltools 9.0 has no translation (torch.special.ndtr: the normal CDF)")
def special_ndtr(context: Any, node: Any) -> None:
    """``x < 0``: ``erfc(|x| / sqrt 2) / 2`` (relatively accurate down to the fp32 underflow at -14); else one
    minus it."""
    from coremltools.converters.mil.mil import Builder as mb

    x = _inputs(context, node, 1)[0]
    tail = _upper_tail(mb, x)
    _finish(context, node, x, mb.select(cond=mb.less(x=x, y=0.0), a=tail, b=mb.sub(x=1.0, y=tail)))


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
    upper = mb.select(cond=mb.less(x=x, y=0.0), a=mb.sub(x=1.0, y=tail), b=tail)  # ndtr(-x)
    near = _log1p(mb.mul(x=upper, y=-1.0))
    _finish(context, node, x, mb.select(cond=mb.less(x=x, y=-1.0), a=far, b=near))


@rescue("special_xlog1py", "coremltools 9.0 has no translation (torch.special.xlog1py)")
def special_xlog1py(context: Any, node: Any) -> None:
    """``x log1p(y)`` (devicefit's accurate ``log1p``), 0 where ``x == 0`` unless ``y`` is NaN."""
    from coremltools.converters.mil.mil import Builder as mb

    x, y = frontend().promote_input_dtypes(_inputs(context, node, 2))
    product = mb.mul(x=x, y=_log1p(y))
    zero = mb.logical_and(x=mb.equal(x=x, y=0.0), y=mb.equal(x=y, y=y))
    value = mb.select(cond=zero, a=0.0, b=product)
    nan_x = mb.not_equal(x=x, y=x)
    context.add(mb.select(cond=nan_x, a=x, b=value, name=node.name), torch_name=node.name)


@rescue("special_entr", "coremltools 9.0 has no translation (torch.special.entr: elementwise entropy)")
def special_entr(context: Any, node: Any) -> None:
    """``-x log x`` for ``x > 0``, 0 at 0, ``-inf`` below, NaN kept."""
    from coremltools.converters.mil.mil import Builder as mb

    x = _inputs(context, node, 1)[0]
    safe = mb.select(cond=mb.greater(x=x, y=0.0), a=x, b=1.0)
    value = mb.mul(x=mb.mul(x=safe, y=mb.log(x=safe, epsilon=0.0)), y=-1.0)
    value = mb.select(cond=mb.less(x=x, y=0.0), a=np.float32(-np.inf), b=value)
    _finish(context, node, x, value)
