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


def broadcast_to(var: Any, shape: Any) -> Any:
    """``var`` (static shape) broadcast to the static ``shape``: leading axes of size 1 added, size-1 axes tiled."""
    from coremltools.converters.mil.mil import Builder as mb

    have, shape = [int(d) for d in var.shape], [int(d) for d in shape]
    if have == shape:
        return var
    lifted = [1] * (len(shape) - len(have)) + have
    if lifted != have:
        var = mb.reshape(x=var, shape=lifted)
    reps = [s if d == 1 else 1 for d, s in zip(lifted, shape, strict=True)]
    return mb.tile(x=var, reps=reps) if any(r != 1 for r in reps) else var


def select(cond: Any, a: Any, b: Any, name: str | None = None) -> Any:
    """``mb.select(cond, a, b)`` declared with the shape it computes: the broadcast of all three.

    NOTE: coremltools types select by ``a`` and ``b`` alone, so a condition wider than both (a per-element mask
    choosing between a row and a scalar) gave a value declared narrower than it is: right in devicefit's
    interpreter, which follows the values, but a device plans memory and later ops from the declared type.
    ``a`` is then first widened to the condition's shape by subtracting zeros of that shape (exact: ``x - 0``
    keeps NaN, infinities and signed zeros) or, for bool, by a conjunction with true. A constant branch (a Python
    or numpy value) takes the other branch's dtype, so ``select(c, np.float32(nan), x)`` holds for an fp16 ``x``.
    """
    from coremltools.converters.mil.mil import Builder as mb

    a, b = _as_dtype_of(a, b), _as_dtype_of(b, a)
    if _wider(_shape(cond), _broadcast(_shape(a), _shape(b))):
        a = _widened(a, cond)
    kwargs = {"name": name} if name is not None else {}
    return mb.select(cond=cond, a=a, b=b, **kwargs)


def _as_dtype_of(value: Any, other: Any) -> Any:
    """A constant ``value`` (not a MIL var) in the dtype of the var ``other``; anything else unchanged."""
    if hasattr(value, "op") or not hasattr(other, "op"):
        return value
    from coremltools.converters.mil.mil.types.type_mapping import nptype_from_builtin

    return np.asarray(value).astype(nptype_from_builtin(other.dtype))


def _shape(value: Any) -> tuple:
    return tuple(value.shape) if hasattr(value, "shape") else ()


def _broadcast(x: tuple, y: tuple) -> tuple:
    """Numpy's broadcast of two shapes, with a symbolic dimension kept as is (1 gives way to anything)."""
    rank = max(len(x), len(y))
    x, y = (1,) * (rank - len(x)) + x, (1,) * (rank - len(y)) + y
    return tuple(b if _is_one(a) else a for a, b in zip(x, y))


def _is_one(dim: Any) -> bool:
    return isinstance(dim, int | np.integer) and dim == 1


def _wider(cond: tuple, values: tuple) -> bool:
    """The condition's shape adds a dimension (or a size in place of 1) to the values' broadcast shape."""
    if len(cond) > len(values):
        return True
    values = values[len(values) - len(cond) :] if cond else ()
    return any(_is_one(v) and not _is_one(c) for c, v in zip(cond, values))


def _widened(value: Any, cond: Any) -> Any:
    """``value`` broadcast against the bool ``cond``: the shape of both, the values of ``value``."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    if not hasattr(value, "op"):
        array = np.asarray(value)
        narrow = {"f": np.float32, "i": np.int32}.get(array.dtype.kind) if array.dtype.itemsize == 8 else None
        value = mb.const(val=array.astype(narrow) if narrow is not None else array)
    if types.is_bool(value.dtype):
        return mb.logical_and(x=value, y=mb.logical_or(x=cond, y=mb.logical_not(x=cond)))
    # NOTE: a - (0 * cond), not a * ones(shape(cond)): coremltools folds a fill of a static shape into a constant
    # as large as the condition (an attention mask's L x L); a - 0 keeps -0, NaN and infinities
    from coremltools.converters.mil.mil.types.type_mapping import nptype_from_builtin

    zero = nptype_from_builtin(value.dtype)(0)
    zeros = mb.mul(x=mb.cast(x=cond, dtype=types.builtin_to_string(value.dtype)), y=zero)
    return mb.sub(x=value, y=zeros)
