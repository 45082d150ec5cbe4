"""Arithmetic ops coremltools 9.0 lacks or mistranslates: ``fmod``, ``reciprocal``, integer ``floor_divide``,
``div`` with a rounding mode, and the ``sum`` of a bool tensor (a count)."""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, frontend, select
from devicefit.convert.rescue._registry import DELEGATED, rescue


@rescue("fmod", "coremltools 9.0 has no translation (angle / phase wrapping: torch.fmod(x, period))")
def fmod(context: Any, node: Any) -> None:
    """``torch.fmod(x, y)``: ``x - trunc(x / y) * y``, the remainder with the sign of ``x`` (C's ``fmod``), a zero
    remainder too (``-0`` for negative ``x``).

    NOTE: PyTorch's (C's) fmod is exact; here ``x / y`` is rounded, so where the true quotient lies within an ulp
    below an integer the result is 0 (or ``y``) instead of just under ``y`` (``fmod(2, -0.4)``: 0 for
    0.39999998): a jump at the function's own discontinuity, not a drift elsewhere.

    Integer inputs stay integer: ``sign(x) * (|x| mod |y|)`` in int32 ops. (They used to go through fp32 ops,
    which coremltools' fp16 pass then computes in fp16 in an fp16 package: integers past 2048 and ``1 / 5``
    rounded, ``fmod(-4099, 5)`` gave 0; differential fuzzer seed 2368.)
    """
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    ops = frontend()
    x, y = ops._get_inputs(context, node, expected=2)
    x, y = ops.promote_input_dtypes([x, y])
    if types.is_int(x.dtype):
        # |x| mod |y| of non-negative integers is the remainder of a truncating division; it takes x's sign
        if x.dtype != types.int32:
            x, y = mb.cast(x=x, dtype="int32"), mb.cast(x=y, dtype="int32")
        magnitude = mb.mod(x=mb.abs(x=x), y=mb.abs(x=y))
        out = select(cond=mb.less(x=x, y=np.int32(0)), a=mb.sub(x=np.int32(0), y=magnitude), b=magnitude)
        context.add(mb.identity(x=out, name=node.name), torch_name=node.name)
        return
    q = mb.real_div(x=x, y=y)
    trunc = mb.mul(x=mb.sign(x=q), y=mb.floor(x=mb.abs(x=q)))
    out = mb.sub(x=x, y=mb.mul(x=trunc, y=y))
    # a zero remainder has x's sign (fmod(-3, 1.5) is -0 in PyTorch; x - 2 * 1.5 gives +0): x * 0 carries it
    out = select(cond=mb.equal(x=out, y=0.0), a=mb.mul(x=x, y=0.0), b=out, name=node.name)
    context.add(out, torch_name=node.name)


@rescue(
    "reciprocal",
    "override: coremltools maps reciprocal (and every `c / x`) to MIL inverse, whose epsilon defaults to 1e-4: "
    "1 / (x + 1e-4), 9% off at x = 1e-3",
    override=True,
)
def reciprocal(context: Any, node: Any) -> None:
    """``torch.reciprocal(x)`` (``c / x`` traces as ``reciprocal(x) * c``): ``real_div(1, x)``, exact as PyTorch.

    Integer inputs give a float result in PyTorch; they are cast to fp32 first.
    """
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    (x,) = frontend()._get_inputs(context, node, expected=1)
    if not types.is_float(x.dtype):
        x = mb.cast(x=x, dtype="fp32")
    one = np.array(1.0, dtype=np.float16 if x.dtype == types.fp16 else np.float32)
    context.add(mb.real_div(x=one, y=x, name=node.name), torch_name=node.name)


def _integer_pair(context: Any, node: Any) -> tuple[Any, Any] | None:
    """The two operands, promoted, when both are integer tensors (else None)."""
    from coremltools.converters.mil.mil import types

    ops = frontend()
    inputs = ops._get_inputs(context, node, min_expected=2)
    x, y = ops.promote_input_dtypes([inputs[0], inputs[1]])
    return (x, y) if types.is_int(x.dtype) and types.is_int(y.dtype) else None


@rescue(
    "floor_divide",
    "override: coremltools casts the quotient of two integer tensors to fp32 (PyTorch keeps int64), so an index "
    "computed with `//` stopped being an integer",
    override=True,
    aliases=("floordiv",),
)
def floor_divide(context: Any, node: Any) -> object:
    """``a // b`` on integers: MIL ``floor_div`` in the integer dtype; floats stay with coremltools."""
    from coremltools.converters.mil.mil import Builder as mb

    pair = _integer_pair(context, node)
    if pair is None:
        frontend().floor_divide(context, node)
        return DELEGATED
    context.add(mb.floor_div(x=pair[0], y=pair[1], name=node.name), torch_name=node.name)
    return None


@rescue(
    "div",
    "override: coremltools casts torch.div(a, b, rounding_mode='floor' / 'trunc') of integers to fp32 (PyTorch "
    "keeps the integer dtype); every other division stays with coremltools",
    override=True,
    aliases=("div.tensor_mode", "div.scalar_mode"),
)
def div(context: Any, node: Any) -> object:
    """Integer ``torch.div`` with a rounding mode, kept integer: ``floor_div``; ``trunc`` is the floor plus one
    where the quotient is negative and inexact (``mod`` is the floored remainder)."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    mode = const_value(arg(context, node, inputs, 2, "rounding_mode"), None)
    pair = _integer_pair(context, node) if mode in ("floor", "trunc") else None
    if pair is None:
        frontend().div(context, node)
        return DELEGATED
    x, y = pair
    floor = mb.floor_div(x=x, y=y)
    if mode == "floor":
        context.add(mb.identity(x=floor, name=node.name), torch_name=node.name)
        return None
    zero = np.array(0, dtype=np.int32)
    inexact = mb.not_equal(x=mb.mod(x=x, y=y), y=zero)
    opposite = mb.logical_xor(x=mb.less(x=x, y=zero), y=mb.less(x=y, y=zero))
    bump = mb.cast(x=mb.logical_and(x=inexact, y=opposite), dtype="int32")
    context.add(mb.add(x=floor, y=bump, name=node.name), torch_name=node.name)
    return None


@rescue(
    "sum",
    "override: coremltools 9.0 sums a bool tensor in fp32, where PyTorch counts in int64: the count then fails as "
    "an index (gather in sparsemax's support size) and compares as a float",
    override=True,
    aliases=("sum.dim_intlist",),
)
def sum_(context: Any, node: Any) -> object:
    """``mask.sum(dim, keepdim)``: a bool tensor counted in int32; every other sum is coremltools' own."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    ops = frontend()
    inputs = ops._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    # a full reduction: aten::sum(x, dtype) in both frontends; a dim list: aten::sum.dim_IntList(x, dim, keepdim)
    reduces_dims = node.kind != "sum" or len(inputs) > 2
    dtype = inputs[1] if len(inputs) == 2 and not reduces_dims else inputs[3] if len(inputs) > 3 else None
    if x.dtype != types.bool or const_value(dtype) is not None:
        ops.mean(context, node)  # coremltools registers its sum under its mean translation
        return DELEGATED
    kwargs: dict[str, Any] = {}
    dim = const_value(arg(context, node, inputs, 1, "dim")) if reduces_dims else None
    if dim is not None and np.size(dim):
        kwargs["axes"] = [int(d) for d in np.atleast_1d(dim)]
    if reduces_dims and bool(const_value(arg(context, node, inputs, 2, "keepdim"), False)):
        kwargs["keep_dims"] = True
    count = mb.reduce_sum(x=mb.cast(x=x, dtype="int32"), name=node.name, **kwargs)
    context.add(count, torch_name=node.name)
    return None
