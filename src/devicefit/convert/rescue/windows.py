"""``Tensor.unfold`` (sliding windows, PatchTST's patchifier) and ``torch.outer`` of mixed dtypes (RT-DETR)."""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import const_value, frontend
from devicefit.convert.rescue._registry import DELEGATED, rescue


@rescue("unfold", "coremltools 9.0 has no translation of Tensor.unfold (PatchTST patches a series with it)")
def unfold(context: Any, node: Any) -> None:
    """``x.unfold(dim, size, step)``: every window ``x[..., i*step : i*step+size, ...]`` along ``dim``.

    The result has ``dim`` replaced by the ``(L - size) // step + 1`` windows and the window's ``size``
    elements as a new last axis; one ``gather`` of a constant ``(windows, size)`` index table along ``dim``
    and a transpose moving the window axis last. Needs a static length along ``dim``.
    """
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.symbolic import is_symbolic

    inputs = frontend()._get_inputs(context, node, expected=4)
    x = inputs[0]
    dim, size, step = (int(const_value(v)) for v in inputs[1:4])
    rank = max(x.rank, 1)
    dim %= rank
    length = x.shape[dim] if x.rank else 1
    if is_symbolic(length):
        raise NotImplementedError(
            "Tensor.unfold along an axis of flexible length (give that axis a fixed size)"
        )
    if size > length or step <= 0:
        raise ValueError(f"unfold: size {size} / step {step} do not fit the axis of length {length}")
    windows = (int(length) - size) // step + 1
    index = (np.arange(windows)[:, None] * step + np.arange(size)[None, :]).astype(np.int32)
    if x.rank == 0:
        x = mb.reshape(x=x, shape=[1])
    picked = mb.gather(x=x, indices=index, axis=dim)  # rank + 1: (..., windows, size, ...)
    perm = [a for a in range(rank + 1) if a != dim + 1] + [dim + 1]
    context.add(mb.transpose(x=picked, perm=perm, name=node.name), torch_name=node.name)


@rescue(
    "outer",
    "coremltools' outer refuses an integer vector with a float one (RT-DETR's sine position embedding)",
    override=True,
)
def outer(context: Any, node: Any) -> None:
    """``torch.outer(a, b)``: ``a[:, None] * b[None, :]`` in the promoted dtype (what PyTorch computes)."""
    from coremltools.converters.mil.mil import Builder as mb

    ops = frontend()
    a, b = ops._get_inputs(context, node, expected=2)
    a, b = ops.promote_input_dtypes([a, b])
    column = mb.expand_dims(x=a, axes=[1])
    row = mb.expand_dims(x=b, axes=[0])
    context.add(mb.mul(x=column, y=row, name=node.name), torch_name=node.name)


@rescue(
    "arange",
    "override: coremltools gives torch.arange(n, dtype=torch.float32) an int32 result, which float-only ops "
    "(sin, cos of sinusoidal position embeddings) refuse",
    override=True,
    aliases=("arange.start", "arange_start_step", "arange.start_step"),
)
def arange(context: Any, node: Any) -> object:
    """``torch.arange(..., dtype=float)``: coremltools' own translation, cast to the float dtype asked for.

    Integer-valued bounds give coremltools an int32 range whatever ``dtype`` says; the values are exact integers,
    so the cast is exact. Ranges without a float ``dtype`` are left to coremltools as they are.
    """
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    from devicefit.convert.rescue._mil import dtype_arg

    ops = frontend()
    inputs = ops._get_inputs(context, node, min_expected=1)
    position = len(inputs) - 4 if node.kind == "arange" and len(inputs) in (5, 6, 7) else len(inputs)
    wanted = dtype_arg(context, node, inputs, position)
    (ops.arange_start_step if node.kind.endswith("start_step") else ops.arange)(context, node)
    made = context[node.name]
    if wanted not in ("fp16", "fp32", "fp64") or not types.is_int(made.dtype):
        return DELEGATED
    cast = mb.cast(x=made, dtype="fp16" if wanted == "fp16" else "fp32", name=f"{node.name}_as_{wanted}")
    context.add(cast, torch_name=node.name, override=True)
    return None
