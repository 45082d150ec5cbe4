"""Elementwise ops coremltools 9.0 has no translation for: ``trunc``, ``addcmul``, ``addcdiv``, ``lerp``,
``log_sigmoid``, ``hypot``, ``celu``. Each is a few MIL ops computing PyTorch's formula."""

from __future__ import annotations

from typing import Any

from devicefit.convert.rescue._mil import arg, const_value, frontend, select
from devicefit.convert.rescue._registry import rescue


def _inputs(context: Any, node: Any, count: int) -> list:
    return list(frontend()._get_inputs(context, node, min_expected=count))


def _promoted(*values: Any) -> list:
    return list(frontend().promote_input_dtypes(list(values)))


@rescue("trunc", "coremltools 9.0 has no translation (torch.trunc, rounding toward zero)")
def trunc(context: Any, node: Any) -> None:
    """``torch.trunc(x)``: ``ceil(x)`` below 0, ``floor(x)`` elsewhere; integers are already whole."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    (x,) = _inputs(context, node, 1)[:1]
    if types.is_int(x.dtype):
        context.add(mb.identity(x=x, name=node.name), torch_name=node.name)
        return
    # ceil below 0, floor elsewhere: -0 stays -0 (sign(-0) * floor(0) gave +0), -0.3 gives -0 as in PyTorch
    out = select(cond=mb.less(x=x, y=0.0), a=mb.ceil(x=x), b=mb.floor(x=x), name=node.name)
    context.add(out, torch_name=node.name)


def _scaled_combination(context: Any, node: Any, combine: str) -> None:
    from coremltools.converters.mil.mil import Builder as mb

    inputs = _inputs(context, node, 3)
    value = const_value(arg(context, node, inputs, 3, "value"), 1)
    base, a, b = _promoted(*inputs[:3])
    term = mb.mul(x=a, y=b) if combine == "mul" else mb.real_div(x=a, y=b)
    if value != 1:
        term = mb.mul(x=term, y=float(value))
    context.add(mb.add(x=base, y=term, name=node.name), torch_name=node.name)


@rescue("addcmul", "coremltools 9.0 has no translation (torch.addcmul: x + value * a * b)")
def addcmul(context: Any, node: Any) -> None:
    _scaled_combination(context, node, "mul")


@rescue("addcdiv", "coremltools 9.0 has no translation (torch.addcdiv: x + value * a / b)")
def addcdiv(context: Any, node: Any) -> None:
    _scaled_combination(context, node, "div")


@rescue("lerp", "coremltools 9.0 has no translation (torch.lerp: start + weight * (end - start))")
def lerp(context: Any, node: Any) -> None:
    from coremltools.converters.mil.mil import Builder as mb

    start, end, weight = _promoted(*_inputs(context, node, 3)[:3])
    step = mb.mul(x=weight, y=mb.sub(x=end, y=start))
    context.add(mb.add(x=start, y=step, name=node.name), torch_name=node.name)


@rescue("log_sigmoid", "coremltools 9.0 has no translation (F.logsigmoid: -softplus(-x))")
def log_sigmoid(context: Any, node: Any) -> None:
    from coremltools.converters.mil.mil import Builder as mb

    (x,) = _inputs(context, node, 1)[:1]
    negated = mb.mul(x=x, y=-1.0)
    context.add(mb.mul(x=mb.softplus(x=negated), y=-1.0, name=node.name), torch_name=node.name)


@rescue("hypot", "coremltools 9.0 has no translation (torch.hypot: sqrt(a^2 + b^2))")
def hypot(context: Any, node: Any) -> None:
    from coremltools.converters.mil.mil import Builder as mb

    a, b = _promoted(*_inputs(context, node, 2)[:2])
    total = mb.add(x=mb.square(x=a), y=mb.square(x=b))
    context.add(mb.sqrt(x=total, name=node.name), torch_name=node.name)


@rescue("celu", "coremltools 9.0 has no translation (nn.CELU: max(0, x) + min(0, a * (exp(x / a) - 1)))")
def celu(context: Any, node: Any) -> None:
    from coremltools.converters.mil.mil import Builder as mb

    inputs = _inputs(context, node, 1)
    x = inputs[0]
    alpha = float(const_value(arg(context, node, inputs, 1, "alpha"), 1.0))
    negative = mb.mul(x=mb.sub(x=mb.exp(x=mb.real_div(x=x, y=alpha)), y=1.0), y=alpha)
    out = mb.add(x=mb.relu(x=x), y=mb.minimum(x=negative, y=0.0), name=node.name)
    context.add(out, torch_name=node.name)
