"""Order statistics coremltools 9.0 lacks: ``cummax``, ``cummin``, ``kthvalue``, ``sort`` / ``argsort`` with
``stable=True``; ``logcumsumexp``, which it mistranslates, is built on the same prefix mask.

Running extrema are built from an ``(n, n)`` lower-triangular mask over the scanned axis (``j <= i``), so every
output position reduces over its prefix in one ``reduce_max`` / ``reduce_min``: ``n²`` elements per row, meant
for the sequence lengths models scan (a few thousand at most). The index is the last position holding the
running extreme (PyTorch's kernel moves to a later equal value: ``x >= best``), and the value is gathered at
that index, so ``-0`` / ``0`` ties come out as PyTorch's. A NaN wins from where it appears on (PyTorch's rule).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, frontend, select
from devicefit.convert.rescue._registry import DELEGATED, rescue


def _axis_length(x: Any, dim: int, what: str) -> int:
    size = x.shape[dim]
    if not isinstance(size, int | np.integer):
        raise NotImplementedError(f"{what} along an axis of flexible length")
    return int(size)


def _outputs(context: Any, node: Any, values: Any, indices: Any) -> None:
    """Bind a (values, indices) pair: one name per output on TorchScript, a tuple on torch.export."""
    from coremltools.converters.mil.mil import Builder as mb

    if len(node.outputs) > 1:
        context.add(mb.identity(x=values, name=node.outputs[0]), torch_name=node.outputs[0])
        context.add(mb.identity(x=indices, name=node.outputs[1]), torch_name=node.outputs[1])
    else:
        context.add((values, indices), torch_name=node.name)


def _running_extreme(context: Any, node: Any, largest: bool) -> None:
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types
    from coremltools.converters.mil.mil.types.type_mapping import nptype_from_builtin

    what = "cummax" if largest else "cummin"
    inputs = frontend()._get_inputs(context, node, expected=2)
    x = inputs[0]
    if x.rank == 0:
        x = mb.reshape(x=x, shape=[1])
    dim = int(const_value(inputs[1])) % x.rank
    n = _axis_length(x, dim, what)
    if types.is_bool(x.dtype):
        raise NotImplementedError(f"{what} of a bool tensor (cast it to an integer type first)")
    perm = [a for a in range(x.rank) if a != dim] + [dim]
    if perm != list(range(x.rank)):
        x = mb.transpose(x=x, perm=perm)
    is_float = types.is_float(x.dtype)
    prefix = np.tril(np.ones((n, n), dtype=bool))  # prefix[i, j]: j <= i
    nan = mb.not_equal(x=x, y=x) if is_float else None
    # NOTE: positions outside the prefix take the row's own smallest (largest) value, never a constant ±inf:
    # coremltools' select_optimization rewrites select(const mask, x, -inf) as x + (0 | -inf), where a NaN
    # outside the prefix leaks in, and fp16-safe constants would turn the -inf into -32752
    clean = select(cond=nan, a=np.zeros((), nptype_from_builtin(x.dtype)), b=x) if nan is not None else x
    floor = (mb.reduce_min if largest else mb.reduce_max)(x=clean, axes=[-1], keep_dims=True)
    # NOTE: MIL select's output shape is the broadcast of a and b only (cond does not widen it): tile first
    row = mb.tile(
        x=mb.expand_dims(x=clean, axes=[-2]), reps=[1] * (x.rank - 1) + [n, 1]
    )  # (..., i, j) = x[j]
    masked = select(cond=prefix, a=row, b=mb.expand_dims(x=floor, axes=[-1]))
    best = (mb.reduce_max if largest else mb.reduce_min)(x=masked, axes=[-1], keep_dims=True)  # (..., n, 1)
    hit = mb.equal(x=row, y=best)
    if nan is not None:  # from a NaN on, the running extreme is the latest NaN
        nan_at = mb.expand_dims(x=nan, axes=[-2])  # (..., 1, j)
        seen = mb.reduce_max(
            x=mb.cast(x=mb.logical_and(x=nan_at, y=prefix), dtype="int32"), axes=[-1], keep_dims=True
        )
        hit = select(cond=mb.cast(x=seen, dtype="bool"), a=mb.logical_and(x=nan_at, y=prefix), b=hit)
    # the last hit in the prefix: (j + 1) where hit, else 0; its maximum minus one
    hits = mb.cast(x=mb.logical_and(x=hit, y=prefix), dtype="int32")
    last = mb.reduce_max(x=mb.mul(x=hits, y=np.arange(1, n + 1, dtype=np.int32)), axes=[-1], keep_dims=False)
    indices = mb.sub(x=last, y=np.int32(1))
    values = mb.gather_along_axis(x=x, indices=indices, axis=-1)
    if perm != list(range(x.rank)):
        back = list(np.argsort(perm))
        values, indices = mb.transpose(x=values, perm=back), mb.transpose(x=indices, perm=back)
    if inputs[0].rank == 0:
        values, indices = mb.reshape(x=values, shape=[]), mb.reshape(x=indices, shape=[])
    _outputs(context, node, values, indices)


@rescue("cummax", "coremltools 9.0 has no translation (torch.cummax: running maximum and where it is)")
def cummax(context: Any, node: Any) -> None:
    """``torch.cummax(x, dim)``: values and int32 indices of the running maximum (static length along ``dim``)."""
    _running_extreme(context, node, largest=True)


@rescue("cummin", "coremltools 9.0 has no translation (torch.cummin: running minimum and where it is)")
def cummin(context: Any, node: Any) -> None:
    """``torch.cummin(x, dim)``: values and int32 indices of the running minimum (static length along ``dim``)."""
    _running_extreme(context, node, largest=False)


@rescue(
    "kthvalue", "coremltools 9.0 has no translation (torch.kthvalue: the k-th smallest value and its index)"
)
def kthvalue(context: Any, node: Any) -> None:
    """``torch.kthvalue(x, k, dim=-1, keepdim=False)``: an ascending ``argsort`` and a gather at rank ``k - 1``
    (NaN sorts last, as in PyTorch; for repeated values the index may name another of the equal entries)."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    x = inputs[0]
    k = int(const_value(inputs[1]))
    if x.rank == 0:
        x = mb.reshape(x=x, shape=[1])
    dim = int(const_value(arg(context, node, inputs, 2, "dim"), -1)) % x.rank
    keepdim = bool(const_value(arg(context, node, inputs, 3, "keepdim"), False))
    n = _axis_length(x, dim, "kthvalue")
    if not 1 <= k <= n:
        raise ValueError(f"kthvalue: k={k} is out of range for {n} values along dim {dim}")
    order = mb.argsort(x=x, axis=dim, ascending=True)
    begin, end = [0] * x.rank, [0] * x.rank
    begin[dim], end[dim] = k - 1, k
    mask = [True] * x.rank
    mask[dim] = False
    index = mb.slice_by_index(x=order, begin=begin, end=end, begin_mask=mask, end_mask=mask)
    values = mb.gather_along_axis(x=x, indices=index, axis=dim)
    if inputs[0].rank == 0:
        values, index = mb.reshape(x=values, shape=[]), mb.reshape(x=index, shape=[])
    elif not keepdim:
        values, index = mb.squeeze(x=values, axes=[dim]), mb.squeeze(x=index, axes=[dim])
    _outputs(context, node, values, index)


@rescue(
    "logcumsumexp",
    "override: coremltools computes log(cumsum(exp(x))): inf from x = 89 (exp overflows) and -103 for -inf (MIL "
    "log's epsilon), silently",
    override=True,
)
def logcumsumexp(context: Any, node: Any) -> None:
    """``out_i = m_i + log(sum_{j <= i} exp(x_j - m_i))`` with ``m_i`` the running maximum, over an ``(n, n)``
    prefix mask (no overflow, ``-inf`` entries contribute 0). ``m_i = ±inf`` gives ``m_i`` (PyTorch's result);
    a NaN spreads from where it appears on.

    The masked-out slots take ``x_0`` (already in every prefix), never a constant ``-inf``: see
    :func:`_running_extreme`.
    """
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, expected=2)
    x = inputs[0]
    if x.rank == 0:
        x = mb.reshape(x=x, shape=[1])
    dim = int(const_value(inputs[1])) % x.rank
    n = _axis_length(x, dim, "logcumsumexp")
    perm = [a for a in range(x.rank) if a != dim] + [dim]
    if perm != list(range(x.rank)):
        x = mb.transpose(x=x, perm=perm)
    prefix = np.tril(np.ones((n, n), dtype=bool))  # prefix[i, j]: j <= i
    # (..., n, n): x_j in every row, tiled: MIL select's output shape is the broadcast of a and b only
    columns = mb.tile(x=mb.expand_dims(x=x, axes=[-2]), reps=[1] * (x.rank - 1) + [n, 1])
    first = mb.slice_by_index(
        x=x, begin=[0] * x.rank, end=[0] * (x.rank - 1) + [1], end_mask=[True] * (x.rank - 1) + [False]
    )
    filled = select(cond=prefix, a=columns, b=mb.expand_dims(x=first, axes=[-1]))  # (..., n, n)
    running_max = mb.reduce_max(x=filled, axes=[-1], keep_dims=True)  # (..., n, 1)
    terms = select(cond=prefix, a=mb.exp(x=mb.sub(x=filled, y=running_max)), b=np.float32(0.0))
    total = mb.log(x=mb.reduce_sum(x=terms, axes=[-1], keep_dims=False), epsilon=0.0)
    peak = mb.squeeze(x=running_max, axes=[-1])
    out = mb.add(x=peak, y=total)
    # an infinite running maximum (inf - inf made NaN above) is the result itself; tested without an inf constant
    infinite = mb.logical_and(x=mb.not_equal(x=mb.sub(x=peak, y=peak), y=0.0), y=mb.equal(x=peak, y=peak))
    out = select(cond=infinite, a=peak, b=out)
    if perm != list(range(x.rank)):
        out = mb.transpose(x=out, perm=[perm.index(a) for a in range(x.rank)])
    context.add(mb.identity(x=out, name=node.name), torch_name=node.name)


@rescue("msort", "coremltools 9.0 has no translation (torch.msort: a sort along the first axis)")
def msort(context: Any, node: Any) -> None:
    """``torch.msort(x) = sort(x, dim=0).values``: an ascending ``argsort`` along axis 0 and a gather (NaN last)."""
    from coremltools.converters.mil.mil import Builder as mb

    x = frontend()._get_inputs(context, node, expected=1)[0]
    order = mb.argsort(x=x, axis=0, ascending=True)
    context.add(mb.gather_along_axis(x=x, indices=order, axis=0, name=node.name), torch_name=node.name)


def _stable_sort(context: Any, node: Any, values: bool) -> object:
    """``sort`` / ``argsort`` with ``stable=True``: coremltools 9.0 refuses TorchScript's four-argument form
    ``(x, stable, dim, descending)`` and has no ``sort.stable`` for torch.export. Built as coremltools builds
    every sort (one MIL ``argsort``, and a gather for the values), which devicefit's interpreter runs stably, so
    ties keep their order as PyTorch's stable sort does. Other sorts stay with coremltools."""
    from coremltools.converters.mil.mil import Builder as mb

    ops = frontend()
    inputs = ops._get_inputs(context, node, min_expected=1)
    stable = ops._get_kwinputs(context, node, "stable", default=[None])[0]
    if len(inputs) != 4 and stable is None:
        (ops.sort if values else ops.argsort)(context, node)
        return DELEGATED
    x = inputs[0]
    dim = const_value(
        inputs[2] if len(inputs) == 4 else ops._get_kwinputs(context, node, "dim", default=[-1])[0]
    )
    descending = const_value(
        inputs[3] if len(inputs) == 4 else ops._get_kwinputs(context, node, "descending", default=[False])[0]
    )
    axis = int(-1 if dim is None else dim)
    if not values:
        context.add(
            mb.argsort(x=x, axis=axis, ascending=not descending, name=node.name), torch_name=node.name
        )
        return None
    order = mb.argsort(x=x, axis=axis, ascending=not descending)
    _outputs(context, node, mb.gather_along_axis(x=x, indices=order, axis=axis), order)
    return None


@rescue(
    "sort",
    "override: coremltools 9.0 refuses torch.sort(..., stable=True) (TorchScript passes four arguments; "
    "torch.export names it sort.stable); other sorts stay with coremltools",
    override=True,
    aliases=("sort.stable",),
)
def sort_stable(context: Any, node: Any) -> object:
    """``torch.sort(x, dim, descending, stable=True)``: values and indices, ties in their input order."""
    return _stable_sort(context, node, values=True)


@rescue(
    "argsort",
    "override: coremltools 9.0 refuses torch.argsort(..., stable=True) (four arguments in TorchScript, "
    "argsort.stable in torch.export); other argsorts stay with coremltools",
    override=True,
    aliases=("argsort.stable",),
)
def argsort_stable(context: Any, node: Any) -> object:
    """``torch.argsort(x, dim, descending, stable=True)``: indices, ties in their input order."""
    return _stable_sort(context, node, values=False)
