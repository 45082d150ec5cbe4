"""Elementwise ops coremltools 9.0 lacks: ``logaddexp``, ``logaddexp2``, ``fmin``, ``fmax``, ``hardshrink``,
``softshrink``, ``float_power``, ``round(decimals=)``, ``isclose``.

Each is PyTorch's own formula, including its answers at NaN, infinities and signed zeros. Tests for NaN and
infinity are built from the operands themselves (``x != x``, ``a - b`` of two equal infinities), never from an
``inf`` constant: under fp16 devicefit's fp16-safe constants pass maps infinite constants to ±32752.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, frontend, select
from devicefit.convert.rescue._registry import DELEGATED, rescue
from devicefit.convert.rescue.mathfn import _log1p


def _float_pair(context: Any, node: Any) -> tuple[Any, Any]:
    """The two operands in one float dtype (integers promote to fp32, as PyTorch's default float dtype)."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    a, b = frontend().promote_input_dtypes([inputs[0], inputs[1]])
    if not types.is_float(a.dtype):
        a, b = mb.cast(x=a, dtype="fp32"), mb.cast(x=b, dtype="fp32")
    return a, b


def _log_add(context: Any, node: Any, base2: bool) -> None:
    from coremltools.converters.mil.mil import Builder as mb

    a, b = _float_pair(context, node)
    difference = mb.sub(x=a, y=b)
    gap = mb.mul(x=mb.abs(x=difference), y=-1.0)  # -|a - b|
    tail = _log1p(mb.exp2(x=gap) if base2 else mb.exp(x=gap))
    if base2:
        tail = mb.mul(x=tail, y=1.0 / math.log(2.0))
    main = mb.add(x=mb.maximum(x=a, y=b), y=tail)
    # PyTorch returns a where a == b is infinite (there a - b is NaN); NaN operands stay NaN through main
    same_infinity = mb.logical_and(x=mb.equal(x=a, y=b), y=mb.not_equal(x=difference, y=difference))
    context.add(select(cond=same_infinity, a=a, b=main, name=node.name), torch_name=node.name)


@rescue("logaddexp", "coremltools 9.0 has no translation (torch.logaddexp: log-space sums, CTC / HMM scores)")
def logaddexp(context: Any, node: Any) -> None:
    """``log(exp(a) + exp(b))`` as PyTorch computes it: ``max(a, b) + log1p(exp(-|a - b|))`` (devicefit's
    accurate ``log1p``), ``a`` where ``a == b = ±inf``; within 5e-7 relative of PyTorch."""
    _log_add(context, node, base2=False)


@rescue("logaddexp2", "coremltools 9.0 has no translation (torch.logaddexp2)")
def logaddexp2(context: Any, node: Any) -> None:
    """``log2(2^a + 2^b)``: ``max(a, b) + log1p(2^-|a - b|) / ln 2``, ``a`` where ``a == b = ±inf``."""
    _log_add(context, node, base2=True)


def _nan_ignoring(context: Any, node: Any, largest: bool) -> None:
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    inputs = frontend()._get_inputs(context, node, expected=2)
    a, b = frontend().promote_input_dtypes([inputs[0], inputs[1]])
    out = (mb.maximum if largest else mb.minimum)(x=a, y=b)

    if types.is_float(a.dtype):  # a NaN operand gives the other one (both NaN: NaN)
        out = select(cond=mb.not_equal(x=b, y=b), a=a, b=out)
        out = select(cond=mb.not_equal(x=a, y=a), a=b, b=out)
    context.add(mb.identity(x=out, name=node.name), torch_name=node.name)


@rescue("fmax", "coremltools 9.0 has no translation (torch.fmax: the maximum ignoring NaN)")
def fmax(context: Any, node: Any) -> None:
    """``torch.fmax(a, b)``: ``maximum``, but a NaN operand gives the other one; integers kept."""
    _nan_ignoring(context, node, largest=True)


@rescue("fmin", "coremltools 9.0 has no translation (torch.fmin: the minimum ignoring NaN)")
def fmin(context: Any, node: Any) -> None:
    """``torch.fmin(a, b)``: ``minimum``, but a NaN operand gives the other one; integers kept."""
    _nan_ignoring(context, node, largest=False)


@rescue("hardshrink", "coremltools 9.0 has no translation (nn.Hardshrink)")
def hardshrink(context: Any, node: Any) -> None:
    """``F.hardshrink(x, lambd=0.5)``: 0 where ``-lambd <= x <= lambd``, else ``x`` (NaN stays NaN)."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    lambd = float(const_value(arg(context, node, inputs, 1, "lambd"), 0.5))
    inside = mb.logical_and(x=mb.greater_equal(x=x, y=-lambd), y=mb.less_equal(x=x, y=lambd))
    context.add(select(cond=inside, a=0.0, b=x, name=node.name), torch_name=node.name)


@rescue("softshrink", "coremltools 9.0 has no translation on TorchScript (nn.Softshrink)")
def softshrink(context: Any, node: Any) -> None:
    """``F.softshrink(x, lambd=0.5)``: ``x - lambd`` above ``lambd``, ``x + lambd`` below ``-lambd``, else 0
    (NaN stays NaN).

    NOTE: PyTorch's own sign of that 0 depends on its code path: its vectorized loop gives +0, the scalar loop for
    a short tensor's tail gives ``x * 0`` (-0 for negatives). +0 here, as the vectorized loop.
    """
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    lambd = float(const_value(arg(context, node, inputs, 1, "lambd"), 0.5))
    inside = select(cond=mb.not_equal(x=x, y=x), a=x, b=0.0)  # a NaN compares false both ways: kept
    low = select(cond=mb.less(x=x, y=-lambd), a=mb.add(x=x, y=lambd), b=inside)
    out = select(cond=mb.greater(x=x, y=lambd), a=mb.sub(x=x, y=lambd), b=low, name=node.name)
    context.add(out, torch_name=node.name)


@rescue(
    "float_power",
    "coremltools 9.0 has no translation (torch.float_power); computed in fp32 (Core ML has no float64)",
    aliases=("float_power.tensor_tensor", "float_power.tensor_scalar", "float_power.scalar"),
)
def float_power(context: Any, node: Any) -> None:
    """``torch.float_power(x, e)``: PyTorch computes ``pow`` in float64; Core ML has no float64, so it is MIL
    ``pow`` in fp32 (within 2 ulp of float64's result rounded to fp32) and the output is fp32."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    inputs = frontend()._get_inputs(context, node, expected=2)
    base, exponent = inputs
    base = base if types.is_float(base.dtype) else mb.cast(x=base, dtype="fp32")
    exponent = exponent if types.is_float(exponent.dtype) else mb.cast(x=exponent, dtype="fp32")
    base, exponent = frontend().promote_input_dtypes([base, exponent])
    context.add(mb.pow(x=base, y=exponent, name=node.name), torch_name=node.name)


@rescue(
    "round",
    "override: coremltools 9.0 refuses round(decimals=) (TorchScript: 2 inputs; torch.export: round.decimals)",
    override=True,
    aliases=("round.decimals",),
)
def round_decimals(context: Any, node: Any) -> object:
    """``torch.round(x, decimals=d)`` as PyTorch's kernel: ``round(x * 10^d) / 10^d`` (``d < 0``:
    ``round(x / 10^-d) * 10^-d``), ``10^d`` in ``x``'s dtype, ties to even; bit-exact. Without ``decimals``
    (or 0) coremltools' own ``round``."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.type_mapping import nptype_from_builtin

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    decimals = int(const_value(arg(context, node, inputs, 1, "decimals"), 0))
    x = inputs[0]
    if decimals == 0 and len(inputs) == 1:
        frontend()._round(context, node)
        return DELEGATED
    if decimals == 0:  # TorchScript's round(x, decimals=0): coremltools' translation expects one input
        context.add(mb.round(x=x, name=node.name), torch_name=node.name)
        return None
    scale = nptype_from_builtin(x.dtype)(np.power(10.0, abs(decimals)))
    if decimals > 0:
        out = mb.real_div(x=mb.round(x=mb.mul(x=x, y=scale)), y=scale, name=node.name)
    else:
        out = mb.mul(x=mb.round(x=mb.real_div(x=x, y=scale)), y=scale, name=node.name)
    context.add(out, torch_name=node.name)
    return None


@rescue(
    "isclose", "coremltools 9.0 has no translation (torch.isclose: tolerance masks, allclose-style guards)"
)
def isclose(context: Any, node: Any) -> None:
    """PyTorch's ``isclose``: ``a == b`` (or both NaN with ``equal_nan``), or a finite ``|a - b|`` within
    ``atol + |rtol * b|``, computed in the operands' dtype as PyTorch does (integers in fp32); bool."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    a, b = frontend().promote_input_dtypes([inputs[0], inputs[1]])
    rtol = float(const_value(arg(context, node, inputs, 2, "rtol"), 1e-5))
    atol = float(const_value(arg(context, node, inputs, 3, "atol"), 1e-8))
    equal_nan = bool(const_value(arg(context, node, inputs, 4, "equal_nan"), False))
    close = mb.equal(x=a, y=b)
    if types.is_float(a.dtype) and equal_nan:
        both_nan = mb.logical_and(x=mb.not_equal(x=a, y=a), y=mb.not_equal(x=b, y=b))
        close = mb.logical_or(x=close, y=both_nan)
    if rtol != 0 or atol != 0:
        if not types.is_float(a.dtype):
            a, b = mb.cast(x=a, dtype="fp32"), mb.cast(x=b, dtype="fp32")
        allowed = mb.add(x=mb.abs(x=mb.mul(x=b, y=rtol)), y=atol)
        actual = mb.abs(x=mb.sub(x=a, y=b))
        finite = mb.equal(x=mb.sub(x=actual, y=actual), y=0.0)  # NaN and inf fail: no inf constant needed
        within = mb.logical_and(x=finite, y=mb.less_equal(x=actual, y=allowed))
        close = mb.logical_or(x=close, y=within)
    context.add(mb.identity(x=close, name=node.name), torch_name=node.name)
