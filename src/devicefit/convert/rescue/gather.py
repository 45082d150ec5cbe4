"""Indexing ops coremltools 9.0 lacks: ``diag``, ``diag_embed``, ``take_along_dim``, ``index_add``,
``embedding_bag``, ``embedding_renorm_`` (``nn.Embedding(max_norm=...)``), ``diagflat``, ``take``; ``masked_select`` by
a constant mask.

Diagonals are built with a constant position mask and a ``select`` (not a product with an identity matrix: an
infinite or NaN entry times 0 would leak NaN where PyTorch writes 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, broadcast_to, const_value, fill, frontend, select, tail_shape
from devicefit.convert.rescue._registry import rescue


def _np_dtype(var: Any) -> Any:
    from coremltools.converters.mil.mil.types.type_mapping import nptype_from_builtin

    return nptype_from_builtin(var.dtype)


def _static(size: Any, what: str) -> int:
    if not isinstance(size, int | np.integer):
        raise NotImplementedError(f"{what} along an axis of flexible length")
    return int(size)


def _on_diagonal(x: Any, offset: int) -> Any:
    """``(..., m, m)`` with the last axis of ``x`` (length ``n``) on diagonal ``offset``, zeros elsewhere."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types
    from coremltools.converters.mil.mil.types.type_mapping import builtin_to_string

    n = _static(x.shape[-1], "diag")
    m = n + abs(offset)
    boolean = types.is_bool(x.dtype)
    if boolean:
        x = mb.cast(x=x, dtype="int32")
    if offset:  # zeros after the values (MIL pad takes floats only)
        zeros = mb.cast(
            x=fill(tail_shape(x, x.rank - 1, [abs(offset)]), 0.0), dtype=builtin_to_string(x.dtype)
        )
        x = mb.concat(values=[x, zeros], axis=-1)
    rows, cols = np.indices((m, m))
    mask = (cols - rows) == offset
    # offset >= 0: row i holds x[i] (at column i + offset); offset < 0: column j holds x[j]
    spread = mb.expand_dims(x=x, axes=[-1] if offset >= 0 else [-2])
    out = select(cond=mask, a=spread, b=np.zeros((), dtype=_np_dtype(x)))
    return mb.cast(x=out, dtype="bool") if boolean else out


@rescue("diag", "coremltools 9.0 has no translation (torch.diag: a vector to a diagonal matrix, or back)")
def diag(context: Any, node: Any) -> None:
    """``torch.diag(x, diagonal)``: a 1-D ``x`` placed on that diagonal of a square matrix; a 2-D ``x``'s
    diagonal as a vector (a gather of its constant positions; static shape)."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    offset = int(const_value(arg(context, node, inputs, 1, "diagonal"), 0))
    if x.rank == 1:
        context.add(mb.identity(x=_on_diagonal(x, offset), name=node.name), torch_name=node.name)
        return
    if x.rank != 2:
        raise ValueError(f"torch.diag takes a 1-D or 2-D tensor, got rank {x.rank}")
    rows, cols = (_static(d, "diag") for d in x.shape)
    start_row, start_col = max(-offset, 0), max(offset, 0)
    length = max(0, min(rows - start_row, cols - start_col))
    if length == 0:
        out = mb.const(val=np.zeros((0,), dtype=_np_dtype(x)), name=node.name)
    else:
        positions = np.stack([np.arange(length) + start_row, np.arange(length) + start_col], axis=1)
        out = mb.gather_nd(x=x, indices=positions.astype(np.int32), name=node.name)
    context.add(out, torch_name=node.name)


@rescue("diag_embed", "coremltools 9.0 has no translation (torch.diag_embed: batched diagonal matrices)")
def diag_embed(context: Any, node: Any) -> None:
    """``torch.diag_embed(x, offset, dim1, dim2)``: the last axis of ``x`` on diagonal ``offset`` of new axes
    ``dim1`` (rows) and ``dim2`` (columns); built on the last two axes, then transposed into place."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    offset = int(const_value(arg(context, node, inputs, 1, "offset"), 0))
    rank = x.rank + 1
    dim1 = int(const_value(arg(context, node, inputs, 2, "dim1"), -2)) % rank
    dim2 = int(const_value(arg(context, node, inputs, 3, "dim2"), -1)) % rank
    if dim1 == dim2:
        raise ValueError(f"diag_embed: dim1 and dim2 are the same axis ({dim1})")
    out = _on_diagonal(x, offset)
    batch = iter(range(rank - 2))
    perm = [rank - 2 if p == dim1 else rank - 1 if p == dim2 else next(batch) for p in range(rank)]
    if perm != list(range(rank)):
        out = mb.transpose(x=out, perm=perm)
    context.add(mb.identity(x=out, name=node.name), torch_name=node.name)


@rescue(
    "take_along_dim", "coremltools 9.0 has no translation (torch.take_along_dim: gather by top-k indices)"
)
def take_along_dim(context: Any, node: Any) -> None:
    """``torch.take_along_dim(x, indices, dim)``: ``gather_along_axis``; without ``dim`` over the flattened
    tensors. Size-1 axes (other than ``dim``) broadcast against each other, as in PyTorch (static sizes)."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    x, indices = inputs[0], inputs[1]
    dim = const_value(arg(context, node, inputs, 2, "dim"), None)
    if dim is None:
        x, indices, axis = mb.reshape(x=x, shape=[-1]), mb.reshape(x=indices, shape=[-1]), 0
    else:
        if x.rank != indices.rank:
            raise ValueError(f"take_along_dim: input rank {x.rank} and indices rank {indices.rank} differ")
        axis = int(dim) % x.rank
        x, indices = _broadcast_except(x, indices, axis)
    context.add(mb.gather_along_axis(x=x, indices=indices, axis=axis, name=node.name), torch_name=node.name)


def _broadcast_except(x: Any, indices: Any, axis: int) -> tuple[Any, Any]:
    """Tile size-1 axes of either tensor to the other's size, every axis but ``axis``."""
    from coremltools.converters.mil.mil import Builder as mb

    x_reps, i_reps = [1] * x.rank, [1] * x.rank
    for a, (xs, js) in enumerate(zip(x.shape, indices.shape)):
        if a == axis or xs == js:
            continue
        xs, js = _static(xs, "take_along_dim broadcast"), _static(js, "take_along_dim broadcast")
        if xs == 1:
            x_reps[a] = js
        elif js == 1:
            i_reps[a] = xs
        else:
            raise ValueError(f"take_along_dim: sizes {xs} and {js} of axis {a} do not broadcast")
    if any(r != 1 for r in x_reps):
        x = mb.tile(x=x, reps=x_reps)
    if any(r != 1 for r in i_reps):
        indices = mb.tile(x=indices, reps=i_reps)
    return x, indices


@rescue("index_add", "coremltools 9.0 has no translation (Tensor.index_add: scatter-add of rows)")
def index_add(context: Any, node: Any) -> None:
    """``x.index_add(dim, index, source, alpha)``: MIL ``scatter`` with ``mode="add"`` (repeated indices
    accumulate, as in PyTorch)."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=4)
    x, dim, index, source = inputs[0], int(const_value(inputs[1])), inputs[2], inputs[3]
    alpha = const_value(arg(context, node, inputs, 4, "alpha"), 1)
    if source.dtype != x.dtype:
        from coremltools.converters.mil.mil.types.type_mapping import builtin_to_string

        source = mb.cast(x=source, dtype=builtin_to_string(x.dtype))
    if alpha != 1:
        source = mb.mul(x=source, y=np.array(alpha, dtype=_np_dtype(x)))
    if x.rank == 0:
        raise ValueError("index_add on a 0-d tensor")
    out = mb.scatter(
        data=x, indices=index, updates=source, axis=int(dim) % x.rank, mode="add", name=node.name
    )
    context.add(out, torch_name=node.name)


_BAG_MODES = {0: "sum", 1: "mean", 2: "max", "sum": "sum", "mean": "mean", "max": "max"}


@rescue(
    "embedding_bag",
    "coremltools 9.0 has no translation (nn.EmbeddingBag: recommendation models' sparse features)",
    aliases=("embedding_bag.padding_idx", "_embedding_bag", "_embedding_bag_forward_only"),
)
def embedding_bag(context: Any, node: Any) -> None:
    """``F.embedding_bag(indices, weight, offsets, mode, per_sample_weights, include_last_offset, padding_idx)``.

    Bag ``b`` of 1-D ``indices`` is ``indices[offsets[b]:offsets[b + 1]]`` (2-D indices: one bag per row). Each
    position's bag is ``#(offsets <= position) - 1``, a membership mask ``(bags, positions)`` selects the gathered
    rows, and sum / mean / max reduce over positions; positions equal to ``padding_idx`` belong to no bag, and an
    empty bag gives zeros, as in PyTorch. Offsets may be computed at run time. Only the first output (the bags)
    is given: a model reading ``offset2bag`` / ``bag_size`` / ``max_indices`` fails to convert at this op.
    """
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    weight, indices = inputs[0], inputs[1]
    offsets = arg(context, node, inputs, 2, "offsets")
    mode = _BAG_MODES[const_value(arg(context, node, inputs, 4, "mode"), 0)]
    per_sample = arg(context, node, inputs, 6, "per_sample_weights")
    include_last = bool(const_value(arg(context, node, inputs, 7, "include_last_offset"), False))
    padding_idx = const_value(arg(context, node, inputs, 8, "padding_idx"), None)
    if indices.rank == 2:  # one bag per row: the bag of each position is its row
        bags = _static(indices.shape[0], "embedding_bag")
        per_sample = mb.reshape(x=per_sample, shape=[-1]) if per_sample is not None else None
        indices = mb.reshape(x=indices, shape=[-1])
        length = mb.shape(x=indices)
        position = mb.range_1d(start=0, end=mb.squeeze(x=length, axes=[0]), step=1)
        row = mb.floor_div(x=position, y=np.int32(_static(inputs[1].shape[1], "embedding_bag")))
        member = mb.equal(x=mb.expand_dims(x=row, axes=[0]), y=np.arange(bags, dtype=np.int32)[:, None])
        counted = member
    else:
        if offsets is None:
            raise ValueError("embedding_bag: 1-D indices need offsets")
        offsets = mb.cast(x=offsets, dtype="int32")
        bags = _static(offsets.shape[0], "embedding_bag offsets") - (1 if include_last else 0)
        position = mb.range_1d(start=0, end=mb.squeeze(x=mb.shape(x=indices), axes=[0]), step=1)
        started = mb.less_equal(x=mb.expand_dims(x=offsets, axes=[1]), y=mb.expand_dims(x=position, axes=[0]))
        bag = mb.sub(x=mb.reduce_sum(x=mb.cast(x=started, dtype="int32"), axes=[0], keep_dims=False), y=1)
        # with include_last_offset the positions from the last offset on fall in bag `bags`, matching no row
        member = mb.equal(x=mb.expand_dims(x=bag, axes=[0]), y=np.arange(bags, dtype=np.int32)[:, None])
        counted = member
        if include_last:
            # NOTE: PyTorch's mean divides the last bag by the positions up to the *end* of indices (its bag_size
            # is len(indices) - offsets[-2] there), though the sum stops at the last offset: matched as it is
            last = mb.minimum(x=bag, y=np.int32(bags - 1))
            counted = mb.equal(x=mb.expand_dims(x=last, axes=[0]), y=np.arange(bags, dtype=np.int32)[:, None])
    indices = mb.cast(x=indices, dtype="int32")
    if padding_idx is not None and int(padding_idx) >= 0:
        kept = mb.expand_dims(x=mb.not_equal(x=indices, y=np.int32(padding_idx)), axes=[0])
        member, counted = mb.logical_and(x=member, y=kept), mb.logical_and(x=counted, y=kept)
    rows = mb.gather(x=weight, indices=indices, axis=0)  # (positions, D)
    if per_sample is not None:
        rows = mb.mul(x=rows, y=mb.expand_dims(x=per_sample, axes=[1]))
    chosen = mb.expand_dims(x=member, axes=[2])  # (bags, positions, 1)
    # NOTE: tiled to (bags, positions, D), not broadcast: coremltools' select takes its output shape from a and b
    # alone, so a (1, positions, D) a declared every bag result (1, D) (right values, wrong shape downstream)
    spread = mb.tile(x=mb.expand_dims(x=rows, axes=[0]), reps=[bags, 1, 1])
    count = mb.reduce_sum(x=mb.cast(x=counted, dtype="int32"), axes=[1], keep_dims=True)  # (bags, 1)
    if mode == "max":
        # positions outside the bag take the column's smallest value: never above the bag's own maximum
        floor = mb.reduce_min(x=rows, axes=[0], keep_dims=True)
        out = mb.reduce_max(x=select(cond=chosen, a=spread, b=floor), axes=[1], keep_dims=False)
        out = select(cond=mb.greater(x=count, y=0), a=out, b=0.0, name=node.name)
    else:
        out = mb.reduce_sum(x=select(cond=chosen, a=spread, b=0.0), axes=[1], keep_dims=False)
        if mode == "mean":
            out = mb.real_div(x=out, y=mb.cast(x=mb.maximum(x=count, y=1), dtype="fp32"))
        out = mb.identity(x=out, name=node.name)
    if len(node.outputs) > 1:
        context.add(out, torch_name=node.outputs[0])
    else:
        context.add((out,), torch_name=node.name)


@rescue(
    "embedding_renorm",
    "coremltools 9.0 has no translation (nn.Embedding(max_norm=...) renormalizes the rows it reads in place)",
)
def embedding_renorm(context: Any, node: Any) -> None:
    """``torch.embedding_renorm_(weight, indices, max_norm, norm_type)``: every row whose ``norm_type``-norm exceeds
    ``max_norm`` scaled by ``max_norm / (norm + 1e-7)`` (PyTorch's factor). PyTorch rescales only the rows
    ``indices`` names, in place, and the lookup that follows reads only those rows: rescaling every row gives
    the same lookup (and a row, once rescaled, stays within the bound, so later calls agree too)."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, expected=4)
    weight = inputs[0]
    max_norm, norm_type = float(const_value(inputs[2])), float(const_value(inputs[3]))
    if norm_type == 2.0:
        norm = mb.sqrt(x=mb.reduce_sum(x=mb.mul(x=weight, y=weight), axes=[-1], keep_dims=True))
    else:
        powered = mb.pow(x=mb.abs(x=weight), y=norm_type)
        norm = mb.pow(x=mb.reduce_sum(x=powered, axes=[-1], keep_dims=True), y=1.0 / norm_type)
    scale = mb.real_div(x=max_norm, y=mb.add(x=norm, y=1e-7))
    scale = select(cond=mb.greater(x=norm, y=max_norm), a=scale, b=np.float32(1.0))
    context.add(mb.mul(x=weight, y=scale, name=node.name), node.name)


@rescue(
    "masked_select",
    "coremltools 9.0 has no translation; with a constant mask (a bool buffer, a fixed pattern) the output length "
    "is known at conversion",
)
def masked_select(context: Any, node: Any) -> None:
    """``torch.masked_select(x, mask)`` with a constant ``mask``: ``x`` broadcast to the common shape, flattened,
    and one ``gather`` of the positions ``mask`` keeps (row-major, as PyTorch orders them). A mask computed at
    run time is refused: the output's length is its count of True entries (the scan's hint gives the rewrite)."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic

    x, mask = frontend()._get_inputs(context, node, expected=2)
    if mask.val is None or any_symbolic(x.shape):
        raise NotImplementedError(
            "masked_select with a mask computed at run time: the output length is its count of True entries, "
            "known only at run time (a Core ML output has a fixed shape)"
        )
    keep = np.asarray(mask.val).astype(bool)
    shape = np.broadcast_shapes(tuple(int(d) for d in x.shape), keep.shape)
    kept = np.flatnonzero(np.broadcast_to(keep, shape)).astype(np.int32)
    if kept.size == 0:
        raise NotImplementedError(
            "masked_select with an all-False mask makes an empty tensor (Core ML has none)"
        )
    flat = mb.reshape(x=broadcast_to(x, shape), shape=[-1])
    context.add(mb.gather(x=flat, indices=kept, axis=0, name=node.name), torch_name=node.name)


@rescue("diagflat", "coremltools 9.0 has no translation (torch.diagflat)")
def diagflat(context: Any, node: Any) -> None:
    """``torch.diagflat(x, offset)``: the flattened ``x`` on that diagonal of a square matrix (``diag`` of a
    vector); exact."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    x = mb.reshape(x=inputs[0], shape=[-1]) if inputs[0].rank != 1 else inputs[0]
    offset = int(const_value(arg(context, node, inputs, 1, "offset"), 0))
    context.add(mb.identity(x=_on_diagonal(x, offset), name=node.name), torch_name=node.name)


@rescue("take", "coremltools 9.0 has no translation (torch.take: indices into the flattened tensor)")
def take(context: Any, node: Any) -> None:
    """``torch.take(x, index)``: a gather from the flattened ``x`` (negative indices count from the end, as in
    PyTorch), in ``index``'s shape; exact."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    inputs = frontend()._get_inputs(context, node, expected=2)
    flat = mb.reshape(x=inputs[0], shape=[-1])
    index = inputs[1] if inputs[1].dtype == types.int32 else mb.cast(x=inputs[1], dtype="int32")
    size = _static(flat.shape[0], "take")
    index = select(mb.less(x=index, y=np.int32(0)), mb.add(x=index, y=np.int32(size)), index)
    context.add(mb.gather(x=flat, indices=index, axis=0, name=node.name), torch_name=node.name)
