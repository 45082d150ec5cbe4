"""Counting and searching ops coremltools 9.0 lacks: ``bucketize``, ``searchsorted``, ``isin``,
``count_nonzero``, ``aminmax``.

A sorted search is a count: the insertion point of ``v`` is how many boundaries lie before it, so each value is
compared with every boundary (a broadcast) and the comparisons summed. That is exact, ties included, and has no
data-dependent control flow; the cost is ``values x boundaries`` comparisons, small for the bucket tables models
use.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, frontend
from devicefit.convert.rescue._registry import rescue


def _outputs(context: Any, node: Any, values: list) -> None:
    """Several results: one name each (TorchScript) or a tuple its getitem nodes index (torch.export)."""
    from coremltools.converters.mil.mil import Builder as mb

    if len(node.outputs) > 1:
        for name, value in zip(node.outputs, values):
            context.add(mb.identity(x=value, name=name), torch_name=name)
    else:
        context.add(tuple(values), torch_name=node.name)


def _count_before(context: Any, node: Any, sequence: Any, values: Any, right: bool) -> None:
    """Insertion points of ``values`` in ``sequence`` (sorted on its last axis): ``#{b : not (b >= v)}``, or
    ``#{b : not (b > v)}`` with ``right``. Written with ``not`` so a NaN value counts every boundary, as PyTorch's
    binary search places NaN last."""
    from coremltools.converters.mil.mil import Builder as mb

    if sequence.dtype != values.dtype:
        sequence, values = frontend().promote_input_dtypes([sequence, values])
    if sequence.rank == 1:
        seq = sequence
        vals = mb.expand_dims(x=values, axes=[-1])  # (..., 1) against (M,)
    else:
        # N-D: row i of the sequence for row i of the values; (..., 1, M) against (..., K, 1)
        seq = mb.expand_dims(x=sequence, axes=[-2])
        vals = mb.expand_dims(x=values, axes=[-1])
    compare = mb.greater if right else mb.greater_equal
    before = mb.logical_not(x=compare(x=seq, y=vals))
    count = mb.reduce_sum(x=mb.cast(x=before, dtype="int32"), axes=[-1], keep_dims=False, name=node.name)
    context.add(count, torch_name=node.name)


@rescue(
    "bucketize",
    "coremltools 9.0 has no translation (torch.bucketize: bucket ids for embeddings of continuous features)",
    aliases=("bucketize.tensor", "bucketize.scalar"),
)
def bucketize(context: Any, node: Any) -> None:
    """``torch.bucketize(x, boundaries, out_int32, right)``: for each value, the index of its bucket in the sorted
    1-D ``boundaries`` (``boundaries[i-1] < x <= boundaries[i]``; ``right``: ``boundaries[i-1] <= x <
    boundaries[i]``). Values beyond either end give 0 or ``len(boundaries)``."""
    inputs = frontend()._get_inputs(context, node, min_expected=2)
    values, boundaries = inputs[0], inputs[1]
    if boundaries.rank != 1:
        raise ValueError(f"bucketize: boundaries must be 1-D, got rank {boundaries.rank}")
    right = bool(const_value(arg(context, node, inputs, 3, "right"), False))
    _count_before(context, node, boundaries, values, right)


@rescue(
    "searchsorted",
    "override: coremltools 9.0 refuses torch.searchsorted on a 1-D sorted sequence (and values of another rank)",
    override=True,
    aliases=("searchsorted.tensor", "searchsorted.scalar"),
)
def searchsorted(context: Any, node: Any) -> None:
    """``torch.searchsorted(sorted_sequence, values, out_int32, right, side, sorter)``: a 1-D sequence for any
    values, or an N-D one whose leading axes match the values'. ``side="right"`` is ``right=True``; ``sorter``
    (the argsort of an unsorted sequence) is applied first."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    sequence, values = inputs[0], inputs[1]
    right = bool(const_value(arg(context, node, inputs, 3, "right"), False))
    side = const_value(arg(context, node, inputs, 4, "side"), None)
    if side is not None:
        right = str(side) == "right"
    sorter = arg(context, node, inputs, 5, "sorter")
    if sorter is not None:
        sequence = mb.gather_along_axis(x=sequence, indices=sorter, axis=-1)
    if sequence.rank > 1 and values.rank != sequence.rank:
        raise ValueError(
            f"searchsorted: an N-D sorted sequence (rank {sequence.rank}) needs values of the same rank, "
            f"got rank {values.rank}"
        )
    _count_before(context, node, sequence, values, right)


@rescue(
    "isin",
    "coremltools 9.0 has no translation (torch.isin: membership masks, e.g. special-token masks)",
    aliases=("isin.tensor_tensor", "isin.tensor_scalar", "isin.scalar_tensor"),
)
def isin(context: Any, node: Any) -> None:
    """``torch.isin(elements, test_elements, assume_unique, invert)``: whether each element equals any test
    element (a broadcast ``equal`` and an any-reduction); an empty ``test_elements`` gives all False."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    elements, tests = frontend().promote_input_dtypes([inputs[0], inputs[1]])
    invert = bool(const_value(arg(context, node, inputs, 3, "invert"), False))
    if tests.rank == 0:
        found = mb.equal(x=elements, y=tests)
    elif tests.val is not None and np.size(tests.val) == 0:
        found = mb.cast(x=mb.mul(x=mb.cast(x=elements, dtype="int32"), y=0), dtype="bool")
    else:
        flat = mb.reshape(x=tests, shape=[-1]) if tests.rank != 1 else tests
        hits = mb.cast(x=mb.equal(x=mb.expand_dims(x=elements, axes=[-1]), y=flat), dtype="int32")
        found = mb.greater(x=mb.reduce_max(x=hits, axes=[-1], keep_dims=False), y=0)
    if invert:
        found = mb.logical_not(x=found)
    context.add(mb.identity(x=found, name=node.name), torch_name=node.name)


def _dims(value: Any, rank: int) -> list[int]:
    """A ``dim`` argument (None, an int or a list) as sorted non-negative axes; None means every axis."""
    dims = const_value(value, None)
    if dims is None:
        return list(range(rank))
    dims = [int(d) for d in np.asarray(dims).ravel()]
    return sorted({d % rank for d in dims}) if rank else []


@rescue(
    "count_nonzero",
    "coremltools 9.0 has no translation (torch.count_nonzero: lengths from masks)",
    aliases=("count_nonzero.dim_intlist",),
)
def count_nonzero(context: Any, node: Any) -> None:
    """``torch.count_nonzero(x, dim)``: the number of non-zero entries over ``dim`` (every axis when None), an
    integer tensor like PyTorch's (int32 in Core ML for PyTorch's int64)."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    if types.is_bool(x.dtype):
        nonzero = mb.cast(x=x, dtype="int32")
    else:
        nonzero = mb.cast(x=mb.not_equal(x=x, y=np.array(0, dtype=_np_dtype(x))), dtype="int32")
    axes = _dims(arg(context, node, inputs, 1, "dim"), x.rank)
    if not axes:
        context.add(mb.identity(x=nonzero, name=node.name), torch_name=node.name)
        return
    context.add(mb.reduce_sum(x=nonzero, axes=axes, keep_dims=False, name=node.name), torch_name=node.name)


def _np_dtype(var: Any) -> Any:
    from coremltools.converters.mil.mil.types.type_mapping import nptype_from_builtin

    return nptype_from_builtin(var.dtype)


@rescue(
    "aminmax", "coremltools 9.0 has no translation (torch.aminmax: min and max in one call, e.g. observers)"
)
def aminmax(context: Any, node: Any) -> None:
    """``torch.aminmax(x, dim=None, keepdim=False)``: ``(amin, amax)`` over ``dim`` or every element, in
    ``x``'s dtype (bool through int32 and back)."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    dim = arg(context, node, inputs, 1, "dim")
    keepdim = bool(const_value(arg(context, node, inputs, 2, "keepdim"), False))
    boolean = types.is_bool(x.dtype)
    if boolean:
        x = mb.cast(x=x, dtype="int32")
    axes = _dims(dim, x.rank)
    if x.rank == 0:
        low, high = x, x
    else:
        low = mb.reduce_min(x=x, axes=axes, keep_dims=keepdim)
        high = mb.reduce_max(x=x, axes=axes, keep_dims=keepdim)
    if boolean:
        low, high = mb.cast(x=low, dtype="bool"), mb.cast(x=high, dtype="bool")
    _outputs(context, node, [low, high])
