"""``torch.cdist``, ``F.pairwise_distance``, ``F.cosine_similarity``, ``nn.Bilinear`` (metric learning, point
clouds) and ``torch.median(x, dim)``: coremltools 9.0 lacks or mistranslates them."""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, frontend, select, tail_shape
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
    PyTorch may name another of the equal entries). A slice holding a NaN gives NaN at its first NaN's index. ``torch.median(x)`` over all elements flattens first.
    """
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

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
    if types.is_float(x.dtype):
        # NOTE: a slice holding a NaN has median NaN at its first NaN's index (argsort ranks a NaN last)
        nan = mb.cast(x=mb.not_equal(x=x, y=x), dtype="int32")
        has_nan = mb.greater(x=mb.reduce_max(x=nan, axes=[dim], keep_dims=True), y=0)
        first_nan = mb.cast(x=mb.reduce_argmax(x=nan, axis=dim, keep_dims=True), dtype="int32")
        values = select(cond=has_nan, a=np.float32(np.nan), b=values)
        index = select(cond=has_nan, a=first_nan, b=mb.cast(x=index, dtype="int32"))
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


@rescue(
    "pairwise_distance",
    "coremltools 9.0 has no translation (F.pairwise_distance / nn.PairwiseDistance, triplet-loss embeddings)",
)
def pairwise_distance(context: Any, node: Any) -> None:
    """``F.pairwise_distance(a, b, p, eps, keepdim)``: PyTorch's ``norm(a - b + eps, p)`` over the last axis of
    the broadcast pair (``eps`` is added to the difference, not to the norm). ``p`` = 0 counts non-zero entries,
    ``±inf`` takes the largest / smallest magnitude."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    a, b = frontend().promote_input_dtypes([inputs[0], inputs[1]])
    p = float(const_value(arg(context, node, inputs, 2, "p"), 2.0))
    eps = float(const_value(arg(context, node, inputs, 3, "eps"), 1e-6))
    keepdim = bool(const_value(arg(context, node, inputs, 4, "keepdim"), False))
    diff = mb.abs(x=mb.add(x=mb.sub(x=a, y=b), y=eps))
    reduce = {"axes": [-1], "keep_dims": keepdim}
    if np.isinf(p) or abs(p) >= 1e30:  # TorchScript turns an inf constant into float max
        out = (mb.reduce_max if p > 0 else mb.reduce_min)(x=diff, **reduce)
    elif p == 0:
        out = mb.reduce_sum(x=mb.cast(x=mb.not_equal(x=diff, y=0.0), dtype="fp32"), **reduce)
    elif p == 1:
        out = mb.reduce_sum(x=diff, **reduce)
    elif p == 2:
        out = mb.sqrt(x=mb.reduce_sum(x=mb.square(x=diff), **reduce))
    else:
        out = mb.pow(x=mb.reduce_sum(x=mb.pow(x=diff, y=p), **reduce), y=1.0 / p)
    context.add(mb.identity(x=out, name=node.name), torch_name=node.name)


@rescue("bilinear", "coremltools 9.0 has no translation (nn.Bilinear: y = x1^T W x2 + b per output feature)")
def bilinear(context: Any, node: Any) -> None:
    """``F.bilinear(x1, x2, weight, bias)``: ``y[..., o] = sum_ij x1[..., i] W[o, i, j] x2[..., j] + b[o]``.

    One matmul of ``x1`` with ``W`` laid out ``(I, O*J)``, then a product with ``x2`` summed over ``j``; leading
    axes are flattened and restored.
    """
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=3)
    x1, x2, weight = inputs[0], inputs[1], inputs[2]
    bias = inputs[3] if len(inputs) > 3 else None
    if len(weight.shape) != 3 or any(not isinstance(d, int | np.integer) for d in weight.shape):
        raise NotImplementedError("bilinear needs a weight of static shape (out, in1, in2)")
    outs, in1, in2 = (int(d) for d in weight.shape)
    if weight.val is not None:
        laid = mb.const(
            val=np.ascontiguousarray(np.transpose(weight.val, (1, 0, 2)).reshape(in1, outs * in2))
        )
    else:
        laid = mb.reshape(x=mb.transpose(x=weight, perm=[1, 0, 2]), shape=[in1, outs * in2])
    left = mb.reshape(x=x1, shape=[-1, in1])
    right = mb.expand_dims(x=mb.reshape(x=x2, shape=[-1, in2]), axes=[1])  # (N, 1, J)
    mixed = mb.reshape(x=mb.matmul(x=left, y=laid), shape=[-1, outs, in2])  # (N, O, J)
    y = mb.reduce_sum(x=mb.mul(x=mixed, y=right), axes=[-1], keep_dims=False)
    if bias is not None and not (bias.val is not None and np.size(bias.val) == 0):
        y = mb.add(x=y, y=bias)
    shape = tail_shape(x1, x1.rank - 1, [outs])
    if isinstance(shape, list):
        shape = np.array(shape, dtype=np.int32)
    context.add(mb.reshape(x=y, shape=shape, name=node.name), torch_name=node.name)


@rescue(
    "cosine_similarity",
    "override: coremltools divides by sqrt(max(|a|^2 |b|^2, eps^2)): the product of squared norms overflows fp16 "
    "from norms of 16 up (a cosine of 0, silently), clamps the product instead of each norm, and torch.export's "
    "call without defaults fails",
    override=True,
)
def cosine_similarity(context: Any, node: Any) -> None:
    """``F.cosine_similarity(a, b, dim=1, eps=1e-8)``: PyTorch's ``sum(a / max(|a|, eps) * b / max(|b|, eps))``
    over ``dim`` (each norm clamped on its own; no product of squared norms)."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    a, b = frontend().promote_input_dtypes([inputs[0], inputs[1]])
    dim = int(const_value(arg(context, node, inputs, 2, "dim"), 1))
    eps = float(const_value(arg(context, node, inputs, 3, "eps"), 1e-8))

    def unit(v: Any) -> Any:
        norm = mb.sqrt(x=mb.reduce_sum(x=mb.square(x=v), axes=[dim], keep_dims=True))
        return mb.real_div(x=v, y=mb.maximum(x=norm, y=eps))

    product = mb.mul(x=unit(a), y=unit(b))
    context.add(mb.reduce_sum(x=product, axes=[dim], keep_dims=False, name=node.name), torch_name=node.name)
