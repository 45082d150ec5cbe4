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
