"""Element / slice assignment inside ``forward`` (``t[0, 0] = v``): ``select_scatter`` with dtype differences.

BEiT builds its relative-position index with in-place assignments on an int64 tensor in ``forward``.
torch.export turns ``t[0, 0] = v`` into ``select_scatter``; coremltools 9.0 types the target as fp32 and the
update as int32 and refuses the mismatch. Assignments that depend only on constants are folded here (exact,
like PyTorch); others cast the update to the target's dtype (what PyTorch's in-place copy does).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import frontend
from devicefit.convert.rescue._registry import rescue


@rescue(
    "select_scatter",
    "coremltools 9.0 refuses an update whose dtype differs from the target's (BEiT's index assignment)",
    override=True,
)
def select_scatter(context: Any, node: Any) -> None:
    """``torch.select_scatter(x, src, dim, index)``: ``x`` with ``x.select(dim, index)`` replaced by ``src``."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.type_mapping import builtin_to_string

    ops = frontend()
    x, updates, dim_var, index = ops._get_inputs(context, node, expected=4)
    if dim_var.val is None:
        raise NotImplementedError("select_scatter needs a constant dim")
    dim = int(dim_var.val) % x.rank
    if x.val is not None and updates.val is not None and index.val is not None:
        folded = np.array(x.val, copy=True)
        where = (slice(None),) * dim + (int(index.val),)
        folded[where] = np.asarray(updates.val).astype(folded.dtype)
        context.add(mb.const(val=folded, name=node.name), torch_name=node.name)
        return
    if updates.dtype != x.dtype:
        updates = mb.cast(x=updates, dtype=builtin_to_string(x.dtype))
    # as coremltools' own select_scatter: assign into the slice [0.., index, 0..] with the dim squeezed
    begin: list[Any] = [0] * x.rank
    begin[dim] = index
    squeeze = [False] * x.rank
    squeeze[dim] = True
    out = ops._translate_torch_tensor_assign(
        x=x,
        updates=updates,
        begin=mb.concat(values=begin, axis=0),
        end=mb.shape(x=x),
        squeeze_mask=squeeze,
        name=node.name,
    )
    context.add(out, torch_name=node.name)


@rescue(
    "_internal_op_tensor_inplace_copy",
    "coremltools 9.0 keeps a 0-d update as shape (1,) and then refuses it for a scalar slot (BEiT, TorchScript)",
    override=True,
)
def tensor_inplace_copy(context: Any, node: Any) -> None:
    """``x[i, j] = v`` / ``x[a:b] = t`` in TorchScript (coremltools fuses the slicing into this internal op).

    Same as coremltools' translation, except an update holding exactly as many values as the slot (a
    ``(1,)`` tensor for a scalar slot) is reshaped to the slot's shape first, as PyTorch's copy does.
    """
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic

    ops = frontend()
    data = context[node.inputs[0]]
    updates = context[node.inputs[1]]
    begin, end, stride, begin_mask, end_mask, squeeze_mask = ops._get_slice_params(
        context, data, node.inputs[2:]
    )
    data, updates = ops.promote_input_dtypes([data, updates])
    if begin.val is not None and end.val is not None and not any_symbolic(data.shape):
        slot = tuple(
            ops.solve_slice_by_index_shape(
                data.shape, begin.val, end.val, stride, begin_mask, end_mask, squeeze_mask
            )
        )
        have = tuple(updates.shape)
        if have != slot and int(np.prod(have)) == int(np.prod(slot)):
            updates = mb.squeeze(x=updates) if not slot else mb.reshape(x=updates, shape=list(slot))
    out = ops._translate_torch_tensor_assign(
        x=data,
        updates=updates,
        begin=begin,
        end=end,
        stride=stride,
        begin_mask=begin_mask,
        end_mask=end_mask,
        squeeze_mask=squeeze_mask,
        name=node.name,
    )
    context.add(out)


@rescue(
    "diagonal_scatter",
    "coremltools 9.0 has no translation (torch.export's form of cov.diagonal().add_(eps))",
)
def diagonal_scatter(context: Any, node: Any) -> None:
    """``torch.diagonal_scatter(x, src, offset, dim1, dim2)``: ``x`` with that diagonal replaced by ``src``.

    Static shapes: ``dim1`` / ``dim2`` moved last, each (row, col) on the diagonal takes ``src``'s element of
    its position along the diagonal (a gather by a constant index), every other element stays ``x``'s.
    """
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic
    from coremltools.converters.mil.mil.types.type_mapping import builtin_to_string

    ops = frontend()
    inputs = ops._get_inputs(context, node, min_expected=2)
    x, src = inputs[0], inputs[1]
    args = [inputs[i].val if len(inputs) > i else default for i, default in ((2, 0), (3, 0), (4, 1))]
    if any(a is None for a in args) or any_symbolic(x.shape):
        raise NotImplementedError("diagonal_scatter needs a constant offset and dims and a static shape")
    offset, dim1, dim2 = (int(a) for a in args)
    dim1, dim2 = dim1 % x.rank, dim2 % x.rank
    perm = [d for d in range(x.rank) if d not in (dim1, dim2)] + [dim1, dim2]
    rows, cols = x.shape[dim1], x.shape[dim2]
    i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    on_diagonal = j - i == offset
    if not on_diagonal.any():
        context.add(mb.identity(x=x, name=node.name), torch_name=node.name)
        return
    position = np.where(on_diagonal, i if offset >= 0 else j, 0).astype(np.int32)
    if src.dtype != x.dtype:
        src = mb.cast(x=src, dtype=builtin_to_string(x.dtype))
    lead = [x.shape[d] for d in perm[:-2]]
    spread = mb.reshape(
        x=mb.gather(x=src, indices=position.ravel(), axis=-1), shape=np.array([*lead, rows, cols], np.int32)
    )
    moved = mb.transpose(x=x, perm=perm)
    merged = mb.select(cond=np.broadcast_to(on_diagonal, (*lead, rows, cols)), a=spread, b=moved)
    out = mb.transpose(x=merged, perm=[int(p) for p in np.argsort(perm)], name=node.name)
    context.add(out, torch_name=node.name)
