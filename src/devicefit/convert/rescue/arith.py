"""Arithmetic ops coremltools 9.0 lacks or mistranslates: ``fmod``, ``reciprocal``."""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import frontend
from devicefit.convert.rescue._registry import rescue


@rescue("fmod", "coremltools 9.0 has no translation (angle / phase wrapping: torch.fmod(x, period))")
def fmod(context: Any, node: Any) -> None:
    """``torch.fmod(x, y)``: ``x - trunc(x / y) * y``, the remainder with the sign of ``x`` (C's ``fmod``).

    Integer inputs are computed in fp32 and cast back (exact for |x| < 2**24).
    """
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types
    from coremltools.converters.mil.mil.types.type_mapping import builtin_to_string

    ops = frontend()
    x, y = ops._get_inputs(context, node, expected=2)
    x, y = ops.promote_input_dtypes([x, y])
    integer = types.is_int(x.dtype)
    if integer:
        dtype = builtin_to_string(x.dtype)
        x, y = mb.cast(x=x, dtype="fp32"), mb.cast(x=y, dtype="fp32")
    q = mb.real_div(x=x, y=y)
    trunc = mb.mul(x=mb.sign(x=q), y=mb.floor(x=mb.abs(x=q)))
    if integer:
        out = mb.sub(x=x, y=mb.mul(x=trunc, y=y))
        context.add(mb.cast(x=out, dtype=dtype, name=node.name), torch_name=node.name)
    else:
        context.add(mb.sub(x=x, y=mb.mul(x=trunc, y=y), name=node.name), torch_name=node.name)


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
