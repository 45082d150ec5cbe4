"""``torch.cdist`` (metric learning, point clouds) and ``torch.median(x, dim)``: coremltools 9.0 lacks both."""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, frontend
from devicefit.convert.rescue._registry import rescue


@rescue("cdist", "coremltools 9.0 has no translation (torch.cdist: pairwise p-norm distances)")
def cdist(context: Any, node: Any) -> None:
    """``torch.cdist(a, b, p)``: ``(sum |a_i - b_j|^p)^(1/p)`` from the differences themselves.

    NOTE: not ``|a|^2 + |b|^2 - 2 a.b``: that form cancels catastrophically for close points (a distance of 0
    comes out as sqrt of a rounding error), where the direct form is exact. ``p = inf`` is the largest difference.
    """
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    a, b = inputs[0], inputs[1]
    p = float(const_value(arg(context, node, inputs, 2, "p"), 2.0))
    diff = mb.abs(
        x=mb.sub(x=mb.expand_dims(x=a, axes=[-2]), y=mb.expand_dims(x=b, axes=[-3]))
    )  # (.., P, R, M)
    if np.isinf(p) or p >= 1e30:  # coremltools' TorchScript frontend turns an inf constant into float max
        out = mb.reduce_max(x=diff, axes=[-1], keep_dims=False, name=node.name)
    elif p == 2.0:
        out = mb.sqrt(x=mb.reduce_sum(x=mb.square(x=diff), axes=[-1], keep_dims=False), name=node.name)
    elif p == 1.0:
        out = mb.reduce_sum(x=diff, axes=[-1], keep_dims=False, name=node.name)
    elif p > 0:
        total = mb.reduce_sum(x=mb.pow(x=diff, y=p), axes=[-1], keep_dims=False)
        out = mb.pow(x=total, y=1.0 / p, name=node.name)
    else:
        raise NotImplementedError(f"torch.cdist with p={p:g} (only p > 0 has a Core ML form here)")
    context.add(out, torch_name=node.name)


@rescue(
    "median",
    "coremltools 9.0 has no translation (torch.median(x, dim): the lower median)",
    aliases=("median.dim",),
)
def median(context: Any, node: Any) -> None:
    """``torch.median(x, dim, keepdim)``: values and indices of the lower median (``(n - 1) // 2``-th smallest).

    An ascending ``argsort`` and a gather at that rank; the index is where that value sits (for repeated values
    PyTorch may name another of the equal entries). ``torch.median(x)`` over all elements flattens first.
    """
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    dim_arg = arg(context, node, inputs, 1, "dim")
    keepdim = bool(const_value(arg(context, node, inputs, 2, "keepdim"), False))
    if dim_arg is None:
        x, dim = mb.reshape(x=x, shape=[-1]), 0
    else:
        dim = int(const_value(dim_arg)) % x.rank
    size = x.shape[dim]
    if not isinstance(size, int | np.integer):
        raise NotImplementedError("torch.median along an axis of flexible length")
    order = mb.argsort(x=x, axis=dim, ascending=True)
    rank = (int(size) - 1) // 2
    begin, end = [0] * x.rank, [0] * x.rank
    begin[dim], end[dim] = rank, rank + 1
    mask = [True] * x.rank
    mask[dim] = False
    index = mb.slice_by_index(x=order, begin=begin, end=end, begin_mask=mask, end_mask=mask)
    values = mb.gather_along_axis(x=x, indices=index, axis=dim)
    if not keepdim:
        values, index = mb.squeeze(x=values, axes=[dim]), mb.squeeze(x=index, axes=[dim])
    if dim_arg is None:
        context.add(mb.identity(x=values, name=node.name), torch_name=node.name)
        return
    if len(node.outputs) > 1:  # TorchScript: one name per output
        context.add(mb.identity(x=values, name=node.outputs[0]), torch_name=node.outputs[0])
        context.add(mb.identity(x=index, name=node.outputs[1]), torch_name=node.outputs[1])
    else:  # torch.export: a tuple its getitem nodes index
        context.add((values, index), torch_name=node.name)
