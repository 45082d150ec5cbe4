"""Mask-building ops HF transformers emits: ``new_ones``, ``bitwise_and`` on float-typed masks."""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import dtype_arg, fill, frontend
from devicefit.convert.rescue._registry import rescue


@rescue("new_ones", "coremltools 9.0 has no translation (HF transformers 5.x masks use it)")
def new_ones(context: Any, node: Any) -> None:
    """``x.new_ones(size, dtype=...)``: a tensor of ones, of ``dtype`` or ``x``'s dtype."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.type_mapping import builtin_to_string

    ops = frontend()
    inputs = ops._get_inputs(context, node, min_expected=2)
    dtype = dtype_arg(context, node, inputs, 2) or builtin_to_string(inputs[0].dtype)
    dtype = {"int64": "int32", "uint8": "int32", "int8": "int32", "int16": "int32"}.get(dtype, dtype)
    ones = fill(inputs[1], 1.0)
    context.add(mb.cast(x=ones, dtype=dtype, name=node.name))


@rescue(
    "bitwise_and",
    "coremltools 9.0 rejects non-bool inputs; HF masks reach it as float/int 0-1 tensors",
    override=True,
    # torch.export names it aten.__and__.Tensor; coremltools checks "__and__" but looks up "__and_".
    aliases=("and", "__and__", "__and_"),
)
def bitwise_and(context: Any, node: Any) -> None:
    """``a & b``: logical and on bool (or bool-valued float) tensors; exact bitwise and on int constants."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    ops = frontend()
    x, y = ops._get_inputs(context, node, expected=2)
    ints = [v for v in (x, y) if types.is_int(v.dtype)]
    if ints and len(ints) == 2:
        if x.val is None or y.val is None:
            raise NotImplementedError("bitwise_and of non-constant integer tensors has no Core ML op")
        context.add(mb.const(val=np.bitwise_and(x.val, y.val).astype(np.int32), name=node.name))
        return
    # torch defines & only on bool/int; a float here is a bool mask whose dtype the frontend dropped.
    x = x if types.is_bool(x.dtype) else mb.cast(x=x, dtype="bool")
    y = y if types.is_bool(y.dtype) else mb.cast(x=y, dtype="bool")
    context.add(mb.logical_and(x=x, y=y, name=node.name))
