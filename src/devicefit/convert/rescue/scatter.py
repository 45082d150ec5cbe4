"""Writes along one axis that coremltools 9.0 lacks: ``scatter_reduce``, ``index_fill``, ``index_copy``.

All three map onto MIL ``scatter_along_axis`` / ``scatter`` / ``select`` with the target's own dtype, so integer
tensors stay integer and every reduction is computed the way PyTorch's kernel combines values (one ``max`` /
``min`` / ``add`` / ``mul`` per update).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, frontend, select
from devicefit.convert.rescue._registry import DELEGATED, rescue
from devicefit.convert.rescue.writes import needs_nd, scatter_along

# torch reduce name -> MIL scatter mode (mean: a sum, divided afterwards)
_REDUCTIONS = {"sum": "add", "prod": "mul", "amax": "max", "amin": "min", "mean": "add"}


def _np_dtype(var: Any) -> Any:
    from coremltools.converters.mil.mil.types.type_mapping import nptype_from_builtin

    return nptype_from_builtin(var.dtype)


def _dtype_name(var: Any) -> str:
    from coremltools.converters.mil.mil.types.type_mapping import builtin_to_string

    return builtin_to_string(var.dtype)


def _identity(reduce: str, dtype: Any) -> Any:
    """What a sum (mean) or product starts from (what ``include_self=False`` puts in the written slots)."""
    return dtype(1 if reduce == "prod" else 0)


def _static_shape(var: Any, what: str) -> list[int]:
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic

    if any_symbolic(var.shape):
        raise NotImplementedError(f"{what} needs static shapes (got {var.shape})")
    return [int(d) for d in var.shape]


@rescue(
    "scatter_reduce",
    "coremltools 9.0 has no translation (Tensor.scatter_reduce: segment sums / maxima of graph and point nets)",
    aliases=("scatter_reduce.two",),
)
def scatter_reduce(context: Any, node: Any) -> None:
    """``x.scatter_reduce(dim, index, src, reduce, include_self=True)``: MIL ``scatter_along_axis`` with the
    matching mode (sum: add, prod: mul, amax: max, amin: min; mean: a sum divided by the count of values that
    landed on each slot, plus one for ``x`` itself with ``include_self``, floored for integers as PyTorch does).

    ``include_self=False`` first writes into every slot ``index`` names the reduction's identity (0 for sums and
    means, 1 for products) or, for amax / amin, one of the slot's own ``src`` values, so those slots reduce over
    ``src`` alone. ``src`` is cut to
    ``index``'s shape (PyTorch reads only that part); an index smaller than ``x`` on another axis writes through
    ``scatter_nd`` (``writes.scatter_along``).
    """
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=5)
    x, index, src = inputs[0], inputs[2], inputs[3]
    dim = int(const_value(inputs[1])) % max(x.rank, 1)
    reduce = str(const_value(inputs[4]))
    include_self = bool(const_value(arg(context, node, inputs, 5, "include_self"), True))
    if reduce not in _REDUCTIONS:
        raise ValueError(f"scatter_reduce: reduce={reduce!r} is not one of {sorted(_REDUCTIONS)}")
    x_shape, index_shape = _static_shape(x, "scatter_reduce"), _static_shape(index, "scatter_reduce")
    if all(v.val is not None for v in (x, index, src)):
        # NOTE: coremltools' constant folding of scatter_along_axis ignores the mode (it always writes), so a
        # scatter of constants is computed here instead
        import torch

        data = torch.from_numpy(np.array(x.val))
        positions = torch.from_numpy(np.array(index.val)).long()
        values = torch.from_numpy(np.array(src.val)).to(data.dtype)
        folded = data.scatter_reduce(dim, positions, values, reduce, include_self=include_self)
        context.add(mb.const(val=folded.numpy(), name=node.name), torch_name=node.name)
        return
    index = mb.cast(x=index, dtype="int32")
    if _static_shape(src, "scatter_reduce") != index_shape:
        src = mb.slice_by_index(x=src, begin=[0] * src.rank, end=index_shape)
    if src.dtype != x.dtype:
        src = mb.cast(x=src, dtype=_dtype_name(x))
    dtype = _np_dtype(x)
    base = x
    if not include_self:
        # amax / amin: the slots first take one of their own src values (no ±inf constant, which fp16-safe
        # constants would turn into ±32752); sum / prod / mean: 0 or 1
        start = (
            src if reduce in ("amax", "amin") else np.full(index_shape, _identity(reduce, dtype), dtype=dtype)
        )
        base = scatter_along(
            x, index, mb.const(val=start) if isinstance(start, np.ndarray) else start, dim, "update"
        )
    out = scatter_along(base, index, src, dim, _REDUCTIONS[reduce])
    if reduce == "mean":
        out = _divide_by_count(out, index, x_shape, dim, include_self)
    context.add(mb.identity(x=out, name=node.name), torch_name=node.name)


def _divide_by_count(total: Any, index: Any, shape: list[int], dim: int, include_self: bool) -> Any:
    """``total`` divided by how many values reduced into each slot (at least 1; floored for integers)."""
    from coremltools.converters.mil.mil import Builder as mb

    start = np.full(shape, 1 if include_self else 0, dtype=np.int32)
    if index.val is not None:
        # NOTE: not a MIL scatter of constants: coremltools folds it ignoring mode="add" (counts of 1)
        np.add.at(start, _along(np.asarray(index.val), dim), 1)
        count: Any = np.maximum(start, 1)
    else:
        ones = mb.fill(shape=mb.shape(x=index), value=np.int32(1))
        count = scatter_along(mb.const(val=start), index, ones, dim, "add")
        count = mb.maximum(x=count, y=np.int32(1))  # untouched slots keep x (divided by 1)
    if _is_float(total):
        if isinstance(count, np.ndarray):
            return mb.real_div(x=total, y=count.astype(_np_dtype(total)))
        return mb.real_div(x=total, y=mb.cast(x=count, dtype=_dtype_name(total)))
    return mb.floor_div(x=total, y=count)


def _along(index: np.ndarray, dim: int) -> tuple[np.ndarray, ...]:
    """numpy fancy indices addressing ``index[p]`` along ``dim`` at each position ``p`` (scatter's slots)."""
    grid = list(np.indices(index.shape, sparse=True))
    grid[dim] = index
    return tuple(grid)


def _is_float(var: Any) -> bool:
    from coremltools.converters.mil.mil import types

    return bool(types.is_float(var.dtype))


def _slots_along(index: Any, size: int, dim: int, rank: int) -> Any:
    """A bool mask broadcasting along ``dim``: True at the positions ``index`` (1-D or 0-d, negatives wrapped)
    names."""
    from coremltools.converters.mil.mil import Builder as mb

    index = mb.reshape(x=mb.cast(x=index, dtype="int32"), shape=[-1, 1])
    index = select(cond=mb.less(x=index, y=np.int32(0)), a=mb.add(x=index, y=np.int32(size)), b=index)
    hit = mb.equal(x=index, y=np.arange(size, dtype=np.int32)[None, :])  # (len(index), size)
    named = mb.reduce_max(x=mb.cast(x=hit, dtype="int32"), axes=[0], keep_dims=False)
    shape = [1] * rank
    shape[dim] = size
    return mb.cast(x=mb.reshape(x=named, shape=shape), dtype="bool")


@rescue(
    "index_fill",
    "coremltools 9.0 has no translation (Tensor.index_fill: masking whole rows / channels)",
    aliases=("index_fill.int_scalar", "index_fill.int_tensor"),
)
def index_fill(context: Any, node: Any) -> None:
    """``x.index_fill(dim, index, value)``: a ``select`` between ``value`` and ``x`` on a mask of the slices
    ``index`` names along ``dim`` (index may be computed at run time; static length along ``dim``)."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, expected=4)
    x, index, value = inputs[0], inputs[2], inputs[3]
    dim, size = _static_axis(x, inputs[1], "index_fill")
    if index.shape and index.shape[0] == 0:  # nothing to fill (a reduction over no indices has no identity)
        context.add(mb.identity(x=x, name=node.name), torch_name=node.name)
        return
    mask = _slots_along(index, size, dim, x.rank)
    if value.val is not None:
        value = mb.const(val=np.asarray(value.val).astype(_np_dtype(x)).reshape(()))
    elif value.dtype != x.dtype:
        value = mb.cast(x=value, dtype=_dtype_name(x))
    context.add(select(cond=mask, a=value, b=x, name=node.name), torch_name=node.name)


def _static_axis(x: Any, dim_input: Any, op: str) -> tuple[int, int]:
    """``dim`` normalised and ``x``'s static length along it (index_fill / index_copy need both)."""
    if x.rank == 0:
        raise NotImplementedError(f"{op} on a 0-d tensor")
    dim = int(const_value(dim_input)) % x.rank
    size = x.shape[dim]
    if not isinstance(size, int | np.integer):
        raise NotImplementedError(f"{op} along an axis of flexible length")
    return dim, int(size)


@rescue(
    "index_copy", "coremltools 9.0 has no translation (Tensor.index_copy: writing rows at given positions)"
)
def index_copy(context: Any, node: Any) -> None:
    """``x.index_copy(dim, index, source)``: MIL ``scatter`` with ``mode="update"`` along ``dim`` (negative
    indices wrapped; repeated indices are undefined in PyTorch too)."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, expected=4)
    x, index, source = inputs[0], inputs[2], inputs[3]
    dim, size = _static_axis(x, inputs[1], "index_copy")
    index = mb.reshape(x=mb.cast(x=index, dtype="int32"), shape=[-1])
    index = select(cond=mb.less(x=index, y=np.int32(0)), a=mb.add(x=index, y=np.int32(size)), b=index)
    if source.rank < x.rank:  # a 0-d index takes a source without the dim axis
        source = mb.expand_dims(x=source, axes=[dim])
    if source.dtype != x.dtype:
        source = mb.cast(x=source, dtype=_dtype_name(x))
    out = mb.scatter(data=x, indices=index, updates=source, axis=dim, mode="update", name=node.name)
    context.add(out, torch_name=node.name)


@rescue(
    "scatter",
    "override: coremltools 9.0 fills a scalar update to the index's shape as a constant of the scalar's own dtype, "
    "which fails once that shape is symbolic (a flexible sequence length: Phi-MoE's router masks its first expert "
    "with scatter(-inf)) and when the scalar's dtype is not the target's (GLM-4-MoE's group_mask.scatter_(1, idx, "
    "1) into a float mask: 'updates has dtype int32 whereas data has dtype fp32'); and it refuses an index "
    "smaller than the input on another axis, or a src larger than the index",
    override=True,
    aliases=("scatter.value", "scatter.src", "scatter.reduce"),
)
def scatter_value(context: Any, node: Any) -> object:
    """``x.scatter(dim, index, value)`` with a scalar ``value``: the update is ``value`` in ``x``'s dtype (as
    PyTorch casts it), filled to the index's shape (its runtime shape where symbolic: MIL ``fill`` of
    ``shape(index)``). An index smaller than ``x`` on another axis, or a src larger than the index, writes
    through ``writes.scatter_along``; every other scatter is coremltools' own translation."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic

    ops = frontend()
    inputs = ops._get_inputs(context, node, expected=(4, 5))
    x, dim, index, value = inputs[0], inputs[1], inputs[2], inputs[3]
    scalar = types.is_scalar(value.sym_type) and value.val is not None
    tensor_src = not types.is_scalar(value.sym_type)
    if (
        (scalar or tensor_src)
        and dim.val is not None
        and x.rank > 0
        and needs_nd(x, index, value, int(dim.val) % x.rank)
    ):
        # an index smaller than x on another axis (or a src larger than the index)
        reduce = const_value(inputs[4] if len(inputs) > 4 else arg(context, node, [], 4, "reduce"), "update")
        mode = {"update": "update", "add": "add", "multiply": "mul"}[str(reduce)]
        out = scatter_along(x, index, value, int(dim.val) % x.rank, mode, name=node.name)
        context.add(out, torch_name=node.name)
        return None
    if len(inputs) > 4 or not scalar or dim.val is None:
        ops.scatter(context, node)
        return DELEGATED
    fill = np.array(value.val, dtype=_np_dtype(x))
    if any_symbolic(index.shape):
        updates = mb.fill(shape=mb.shape(x=index), value=fill)
    else:
        updates = mb.const(val=np.full(tuple(int(d) for d in index.shape), fill, dtype=fill.dtype))
    context.add(
        mb.scatter_along_axis(
            data=x, indices=index, updates=updates, axis=int(dim.val), mode="update", name=node.name
        ),
        torch_name=node.name,
    )
    return None
