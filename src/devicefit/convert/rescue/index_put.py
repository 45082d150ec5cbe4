"""``x[i, j] = v`` with index tensors of different (broadcasting) shapes, which coremltools 9.0 refuses.

HF Informer's ProbSparse attention writes its top-u rows back with ``context[arange(B)[:, None], top_u, :] =
out``: index tensors ``(B, 1)`` and ``(B, u)``. coremltools' ``index_put`` stacks the index tensors as they are
and fails ("Component tensor ... has shape (4, 3), others have (4, 1)"). PyTorch broadcasts them first; so does
this translation, then scatters with ``scatter_nd``. Every other use goes to coremltools' own translation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, broadcast_to, const_value, frontend, select
from devicefit.convert.rescue._registry import DELEGATED, rescue


def _static(shape: tuple) -> bool:
    return all(isinstance(d, int | np.integer) for d in shape)


def _broadcast_shape(shapes: list[tuple]) -> tuple[int, ...] | None:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*shapes))
    except ValueError:
        return None


@rescue(
    "index_put",
    "override: coremltools refuses index tensors of different shapes that broadcast (HF Informer's ProbSparse "
    "attention: context[arange(B)[:, None], top_u, :] = out)",
    override=True,
)
def index_put(context: Any, node: Any) -> object:
    """``x.index_put_(indices, values, accumulate)`` where the integer index tensors broadcast to one shape:
    they are broadcast, stacked into ``scatter_nd`` coordinates of the leading axes (negative indices wrapped),
    and ``values`` broadcast to ``index shape + x.shape[len(indices):]``; ``accumulate`` adds (repeated
    positions sum, as in PyTorch). Static shapes only; everything else stays with coremltools."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types
    from coremltools.converters.mil.mil.types.type_mapping import builtin_to_string

    ops = frontend()
    inputs = ops._get_inputs(context, node, min_expected=3)
    x, indices, values = inputs[0], inputs[1], inputs[2]
    accumulate = bool(const_value(arg(context, node, inputs, 3, "accumulate"), False))
    usable = (
        isinstance(indices, list | tuple)
        and indices
        and all(i is not None and types.is_int(i.dtype) for i in indices)
        and len({tuple(i.shape) for i in indices}) > 1
        and all(_static(tuple(i.shape)) for i in [*indices, x, values])
    )
    shape = _broadcast_shape([tuple(i.shape) for i in indices]) if usable else None
    views = _written_views(context, node)
    if shape is None:
        ops.index_put(context, node)
        _rebind(context, views, context[node.name])
        return DELEGATED
    coords = []
    for axis, index in enumerate(indices):
        index = broadcast_to(mb.cast(x=index, dtype="int32"), shape)
        size = np.int32(x.shape[axis])
        coords.append(select(cond=mb.less(x=index, y=np.int32(0)), a=mb.add(x=index, y=size), b=index))
    stacked = mb.stack(values=coords, axis=len(shape))
    target = shape + tuple(int(d) for d in x.shape[len(indices) :])
    if values.dtype != x.dtype:
        values = mb.cast(x=values, dtype=builtin_to_string(x.dtype))
    values = broadcast_to(values, target)
    mode = "add" if accumulate else "update"
    out = mb.scatter_nd(data=x, indices=stacked, updates=values, mode=mode, name=node.name)
    context.add(out, torch_name=node.name)
    _rebind(context, views, out)
    return None


_FULL_END = 2**62  # TorchScript writes an open slice end as INT64_MAX


def _written_views(context: Any, node: Any) -> list[str]:
    """TorchScript names that an in-place ``index_put_`` writes: its target, and through full slices
    (``x[:, :]``, as ``context[rows, top, :] = v`` traces) the tensor it views.

    NOTE: the tracer points later uses of the *target* at the op's result, but not uses of the tensor a slice
    views, and coremltools' TorchScript frontend does not model aliasing: Informer's write-back through a
    trailing ``:`` was silently dropped (the model returned the tensor before the write). A partial slice (a
    write into part of the tensor) cannot be rebound this way and is refused instead of being lost.
    """
    if not node.kind.endswith("_") or not hasattr(node, "parent") or node.parent is None:
        return []  # torch.export is functional: nothing to rebind
    producers = {out: n for n in node.parent.nodes for out in n.outputs}
    names = [node.inputs[0]]
    while (view := producers.get(names[-1])) is not None and view.kind in ("slice", "select"):
        base = context[view.inputs[0]]
        dim, start, end, step = (_const(context, name) for name in view.inputs[1:5])
        size = base.shape[int(dim) % base.rank] if view.kind == "slice" and dim is not None else None
        full = (
            view.kind == "slice"
            and start in (None, 0)
            and step in (None, 1)
            and (end is None or end >= _FULL_END or (isinstance(size, int | np.integer) and end >= size))
        )
        if not full:
            raise NotImplementedError(
                "an indexed assignment into part of a tensor (x[..., a:b][i] = v): coremltools' TorchScript "
                "frontend would drop the write; assign into the whole tensor (x[i, ..., a:b] = v) or convert "
                "with torch.export (--frontend torch.export)"
            )
        names.append(view.inputs[0])
    # the target itself: the tracer already points later uses at the op's result; a state (a KV cache) is
    # updated by coremltools' in-place handling, which a rebound name would cut off
    states = getattr(context, "name_to_source_state", {})
    return [name for name in names[1:] if name not in states]


def _const(context: Any, name: str | None) -> Any:
    if name is None:
        return None
    try:
        value = context[name]
    except ValueError:
        return None
    value = getattr(value, "val", value)
    return None if value is None else int(np.asarray(value))


def _rebind(context: Any, names: list[str], value: Any) -> None:
    """Later uses of each written name see the written tensor (PyTorch's in-place semantics)."""
    for name in names:
        context.add(value, torch_name=name, override=True)
