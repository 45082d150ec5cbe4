"""Small MIL-building helpers shared by the rescue translations."""

from __future__ import annotations

from typing import Any

import numpy as np

# fp16-safe "minus infinity" for additive attention masks: exp() of it underflows to 0 in fp16 and fp32.
MASK_NEG = float(np.finfo(np.float16).min)


def frontend() -> Any:
    """coremltools' torch frontend ops module (private helpers ``_get_inputs`` / ``_get_kwinputs``)."""
    from coremltools.converters.mil.frontend.torch import ops

    return ops


def arg(context: Any, node: Any, inputs: list, position: int, keyword: str) -> Any:
    """Input ``position`` (TorchScript passes every argument) or keyword ``keyword`` (torch.export)."""
    if len(inputs) > position:
        return inputs[position]
    found = frontend()._get_kwinputs(context, node, keyword, default=[None])
    return found[0]


def const_value(var: Any, default: Any = None) -> Any:
    """The Python value of an optional constant argument (``default`` when absent or None)."""
    if var is None:
        return default
    value = var.val if hasattr(var, "val") else var
    return default if value is None else value


def dtype_arg(context: Any, node: Any, inputs: list, position: int) -> str | None:
    """The MIL dtype string of a ``dtype=`` argument (positional in TorchScript, keyword in torch.export)."""
    ops = frontend()
    dtype = inputs[position] if len(inputs) > position else None
    if dtype is None:
        dtype = ops._get_kwinputs(context, node, "dtype", default=[None])[0]
    if dtype is None:
        return None
    value = dtype.val if hasattr(dtype, "val") else dtype
    if value is None:
        return None
    from coremltools.converters.mil.frontend.torch.utils import NUM_TO_DTYPE_STRING, TORCH_DTYPE_TO_NUM

    if not isinstance(value, int | np.integer):
        value = TORCH_DTYPE_TO_NUM[value]
    return NUM_TO_DTYPE_STRING[int(value)]


def fill(size: Any, value: float) -> Any:
    """``fill(shape=size)`` for a size given as a list of scalars, a const (maybe empty) or a tensor."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    if isinstance(size, list | tuple):
        size = mb.concat(values=list(size), axis=0)
    if size.val is not None:
        return mb.const(val=np.full(tuple(int(d) for d in np.asarray(size.val).ravel()), value, np.float32))
    if not types.is_int(size.dtype):
        size = mb.cast(x=size, dtype="int32")
    return mb.fill(shape=size, value=value)


def tail_shape(x: Any, keep: int, tail: list[int]) -> Any:
    """Shape ``x.shape[:keep] + tail`` as a const when static, else computed from ``mb.shape``."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic

    head = list(x.shape[:keep])
    if not any_symbolic(head):
        return [int(d) for d in head] + tail
    head_var = mb.slice_by_index(x=mb.shape(x=x), begin=[0], end=[keep])
    return mb.concat(values=[head_var, np.array(tail, dtype=np.int32)], axis=0)
