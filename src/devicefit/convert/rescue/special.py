"""Elementwise functions coremltools 9.0 has no translation for: ``isinf``, ``isfinite``, ``isneginf``,
``isposinf``, ``signbit``, ``copysign``, ``heaviside``, ``logit``, ``xlogy``, ``sinc``, ``deg2rad``, ``rad2deg``.

Each is PyTorch's definition in a few MIL ops; predicates return bool, integer inputs of the float functions are
computed in fp32 (PyTorch's result dtype).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, frontend, select
from devicefit.convert.rescue._registry import rescue


def _inputs(context: Any, node: Any, count: int) -> list:
    return list(frontend()._get_inputs(context, node, min_expected=count))


def _as_float(x: Any) -> Any:
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    return x if types.is_float(x.dtype) else mb.cast(x=x, dtype="fp32")


def _add(context: Any, node: Any, value: Any) -> None:
    from coremltools.converters.mil.mil import Builder as mb

    context.add(mb.identity(x=value, name=node.name), torch_name=node.name)


def _is_float(x: Any) -> bool:
    from coremltools.converters.mil.mil import types

    return bool(types.is_float(x.dtype))


def _infinite(x: Any, sign: int) -> Any:
    """``x == +inf`` (sign 1), ``x == -inf`` (sign -1) or ``|x| == inf`` (sign 0); all False for integers."""
    from coremltools.converters.mil.mil import Builder as mb

    if not _is_float(x):
        return mb.not_equal(x=x, y=x)  # integers are never infinite (x != x is False everywhere)
    if sign == 0:
        return mb.equal(x=mb.abs(x=x), y=float("inf"))
    return mb.equal(x=x, y=float("inf") * sign)


@rescue("isinf", "coremltools 9.0 has no translation (torch.isinf: masks of overflowed scores)")
def isinf(context: Any, node: Any) -> None:
    _add(context, node, _infinite(_inputs(context, node, 1)[0], 0))


@rescue("isposinf", "coremltools 9.0 has no translation (torch.isposinf)")
def isposinf(context: Any, node: Any) -> None:
    _add(context, node, _infinite(_inputs(context, node, 1)[0], 1))


@rescue("isneginf", "coremltools 9.0 has no translation (torch.isneginf: fully masked attention rows)")
def isneginf(context: Any, node: Any) -> None:
    _add(context, node, _infinite(_inputs(context, node, 1)[0], -1))


@rescue("isfinite", "coremltools 9.0 has no translation (torch.isfinite: guards before a division or a log)")
def isfinite(context: Any, node: Any) -> None:
    """Neither NaN nor ±inf: ``x - x == 0`` holds exactly for every finite ``x`` and fails for NaN and inf."""
    from coremltools.converters.mil.mil import Builder as mb

    x = _inputs(context, node, 1)[0]
    if not _is_float(x):
        _add(context, node, mb.equal(x=x, y=x))
        return
    _add(context, node, mb.equal(x=mb.sub(x=x, y=x), y=0.0))


@rescue("signbit", "coremltools 9.0 has no translation (torch.signbit)")
def signbit(context: Any, node: Any) -> None:
    """Whether the sign bit is set: ``x < 0``, or ``1 / x < 0`` for zeros (``-0`` has it), False for NaN of
    either sign (MIL cannot read a NaN's sign bit; PyTorch reports it, but NaNs from arithmetic are positive)."""
    from coremltools.converters.mil.mil import Builder as mb

    x = _inputs(context, node, 1)[0]
    if not _is_float(x):
        _add(context, node, mb.less(x=x, y=np.array(0, dtype=np.int32)))
        return
    negative_zero = mb.logical_and(x=mb.equal(x=x, y=0.0), y=mb.less(x=mb.real_div(x=1.0, y=x), y=0.0))
    _add(context, node, mb.logical_or(x=mb.less(x=x, y=0.0), y=negative_zero))


def _negative(x: Any) -> Any:
    """``x`` has its sign bit set (``-0`` included)."""
    from coremltools.converters.mil.mil import Builder as mb

    return mb.logical_or(
        x=mb.less(x=x, y=0.0),
        y=mb.logical_and(x=mb.equal(x=x, y=0.0), y=mb.less(x=mb.real_div(x=1.0, y=x), y=0.0)),
    )


@rescue("copysign", "coremltools 9.0 has no translation (torch.copysign)", aliases=("copysign.tensor",))
def copysign(context: Any, node: Any) -> None:
    """``|a|`` with the sign of ``b`` (``-0`` in ``b`` counts as negative, as in PyTorch)."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = _inputs(context, node, 2)
    a, b = _as_float(inputs[0]), _as_float(inputs[1])
    magnitude = mb.abs(x=a)
    _add(context, node, select(cond=_negative(b), a=mb.mul(x=magnitude, y=-1.0), b=magnitude))


@rescue("heaviside", "coremltools 9.0 has no translation (torch.heaviside: step functions)")
def heaviside(context: Any, node: Any) -> None:
    """``values`` where ``x == 0``, else ``x > 0`` (so NaN gives 0, as in PyTorch)."""
    from coremltools.converters.mil.mil import Builder as mb

    x, values = frontend().promote_input_dtypes(_inputs(context, node, 2)[:2])
    zero = np.array(0, dtype=np.float32 if _is_float(x) else np.int32)
    one = np.array(1, dtype=zero.dtype)
    step = select(cond=mb.greater(x=x, y=zero), a=one, b=zero)
    _add(context, node, select(cond=mb.equal(x=x, y=zero), a=values, b=step))


@rescue(
    "logit", "coremltools 9.0 has no translation (torch.logit: inverse sigmoid, e.g. in DETR-style refiners)"
)
def logit(context: Any, node: Any) -> None:
    """``log(p / (1 - p))``, ``p`` clamped to ``[eps, 1 - eps]`` when ``eps`` is given (as in PyTorch)."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = _inputs(context, node, 1)
    p = _as_float(inputs[0])
    eps = const_value(arg(context, node, inputs, 1, "eps"), None)
    if eps is not None:
        p = mb.clip(x=p, alpha=float(eps), beta=float(1.0 - eps))
    # NOTE: MIL log adds an epsilon to its input by default (log(0) would be -103, not -inf): 0 here
    ratio = mb.real_div(x=p, y=mb.sub(x=1.0, y=p))
    _add(context, node, mb.log(x=ratio, epsilon=0.0))


@rescue("xlogy", "coremltools 9.0 has no translation (torch.xlogy: entropies)", aliases=("xlogy.tensor",))
def xlogy(context: Any, node: Any) -> None:
    """``x * log(y)``, 0 where ``x == 0`` (unless ``y`` is NaN), NaN where ``y`` is NaN."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = _inputs(context, node, 2)
    x, y = _as_float(inputs[0]), _as_float(inputs[1])
    product = mb.mul(x=x, y=mb.log(x=y, epsilon=0.0))
    zero = mb.logical_and(x=mb.equal(x=x, y=0.0), y=mb.equal(x=y, y=y))
    _add(context, node, select(cond=zero, a=0.0, b=product))


@rescue("sinc", "coremltools 9.0 has no translation (torch.sinc: sin(pi x) / (pi x), windowed-sinc filters)")
def sinc(context: Any, node: Any) -> None:
    """``sin(pi x) / (pi x)``, 1 at ``x == 0``."""
    from coremltools.converters.mil.mil import Builder as mb

    x = _as_float(_inputs(context, node, 1)[0])
    scaled = mb.mul(x=x, y=math.pi)
    zero = mb.equal(x=x, y=0.0)
    ratio = mb.real_div(x=mb.sin(x=scaled), y=select(cond=zero, a=1.0, b=scaled))
    _add(context, node, select(cond=zero, a=1.0, b=ratio))


@rescue("deg2rad", "coremltools 9.0 has no translation (torch.deg2rad)")
def deg2rad(context: Any, node: Any) -> None:
    from coremltools.converters.mil.mil import Builder as mb

    _add(context, node, mb.mul(x=_as_float(_inputs(context, node, 1)[0]), y=math.pi / 180.0))


@rescue("rad2deg", "coremltools 9.0 has no translation (torch.rad2deg)")
def rad2deg(context: Any, node: Any) -> None:
    from coremltools.converters.mil.mil import Builder as mb

    _add(context, node, mb.mul(x=_as_float(_inputs(context, node, 1)[0]), y=180.0 / math.pi))


@rescue("sgn", "coremltools 9.0 has no translation (torch.sgn: sign, for real tensors)")
def sgn(context: Any, node: Any) -> None:
    """``torch.sgn`` of a real tensor is ``torch.sign``: -1, 0 or 1 (NaN kept, ``-0`` gives 0)."""
    from coremltools.converters.mil.mil import Builder as mb

    x = _inputs(context, node, 1)[0]
    _add(context, node, mb.sign(x=x))


@rescue("angle", "coremltools 9.0 has no translation (torch.angle of a real tensor: pi below 0)")
def angle(context: Any, node: Any) -> None:
    """``torch.angle`` of a real tensor: ``pi`` where ``x < 0``, else 0; NaN kept; integers give fp32."""
    from coremltools.converters.mil.mil import Builder as mb

    x = _as_float(_inputs(context, node, 1)[0])
    value = select(cond=mb.less(x=x, y=0.0), a=np.float32(math.pi), b=np.float32(0.0))
    _add(context, node, select(cond=mb.not_equal(x=x, y=x), a=x, b=value))


@rescue(
    "ldexp",
    "coremltools 9.0 has no translation (torch.ldexp: x * 2^e)",
    aliases=("ldexp.tensor", "ldexp.Tensor"),
)
def ldexp(context: Any, node: Any) -> None:
    """PyTorch's ``x * pow(2, e)`` (fp32; an integer ``x`` is cast as PyTorch promotes it)."""
    from coremltools.converters.mil.mil import Builder as mb

    x, e = (_as_float(v) for v in _inputs(context, node, 2)[:2])
    _add(context, node, mb.mul(x=x, y=mb.pow(x=np.float32(2.0), y=e)))


@rescue(
    "atan2",
    "override: coremltools' atan2 gives 0 for atan2(0, -1) (PyTorch: pi; the phase of a negative real, e.g. an "
    "rfft's real DC bin), loses the signs of zero and returns NaN for two infinities, silently",
    override=True,
    aliases=("arctan2",),
)
def atan2(context: Any, node: Any) -> None:
    """C's ``atan2(y, x)``: ``atan(y / x)``, plus ``±pi`` (the sign bit of ``y``, ``-0`` included) where ``x`` is
    negative (``-0`` included when ``y`` is zero); ``±pi/2`` on the y axis; ``±pi/4`` / ``±3pi/4`` for two
    infinities; NaN kept."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = _inputs(context, node, 2)
    y, x = frontend().promote_input_dtypes([_as_float(inputs[0]), _as_float(inputs[1])])
    y_negative = _negative(y)
    x_negative = _negative(x)  # -0 counts: atan2(0, -0) is pi
    half_turn = select(cond=y_negative, a=np.float32(-math.pi), b=np.float32(math.pi))
    base = mb.atan(x=mb.real_div(x=y, y=x))
    value = select(cond=mb.less(x=x, y=0.0), a=mb.add(x=base, y=half_turn), b=base)
    # x = ±0: ±pi/2 off the origin; at the origin 0 with y's sign (x = +0) or ±pi (x = -0)
    quarter = mb.mul(x=half_turn, y=0.5)
    origin = select(cond=x_negative, a=half_turn, b=mb.mul(x=y, y=0.0))
    on_y_axis = select(cond=mb.equal(x=y, y=0.0), a=origin, b=quarter)
    value = select(cond=mb.equal(x=x, y=0.0), a=on_y_axis, b=value)
    # both infinite (inf / inf is NaN): pi/4 toward +x, 3pi/4 toward -x, y's sign
    both = mb.logical_and(x=_infinite(y, 0), y=_infinite(x, 0))
    corner = mb.mul(x=half_turn, y=select(cond=x_negative, a=np.float32(0.75), b=np.float32(0.25)))
    _add(context, node, select(cond=both, a=corner, b=value))
