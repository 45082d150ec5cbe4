"""Trace-safe variants of kernels whose reference version reads input data into Python.

The reference kernel stays the spec (``interp/ops``); a variant here computes the same values for every input
the reference accepts, without converting tensor data to Python values, so a trace of it holds for any input
of the same shape. Where the reference raises on bad data (an index out of range), the variant must raise
too (an aten bounds check); the compiled path then reruns the reference, which raises its own clear error.
Each variant is tested against its reference kernel (tests/interp/test_compiled.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from devicefit.interp.ops._util import norm_axis


class CannotLower(Exception):
    """This call's attributes are outside what the variant handles."""


def gather(
    x: torch.Tensor,
    indices: torch.Tensor,
    axis: int = 0,
    batch_dims: int = 0,
    validate_indices: bool = False,
    negative_wraps: bool = True,
) -> torch.Tensor:
    """``gather`` (batch_dims 0, the embedding lookup) with data-dependent indices."""
    if batch_dims != 0:
        raise CannotLower("batch_dims > 0 uses advanced indexing, which would wrap indices below -size")
    axis = norm_axis(axis, x.dim())
    shape = list(x.shape)
    idx = indices.to(torch.int64)
    if negative_wraps:  # up to iOS16 the reference wraps negative indices once (from iOS17 it refuses them)
        idx = torch.where(idx < 0, idx + shape[axis], idx)
    # index_select refuses whatever is still out of range, negatives included, so no input gets a value
    # the reference would not give
    return torch.index_select(x, axis, idx.reshape(-1)).reshape(
        shape[:axis] + list(idx.shape) + shape[axis + 1 :]
    )


def gather_ios17(
    x: torch.Tensor, indices: torch.Tensor, axis: int = 0, batch_dims: int = 0, validate_indices: bool = False
) -> torch.Tensor:
    """``gather`` from iOS17, where negative indices are out of bounds."""
    return gather(x, indices, axis, batch_dims, negative_wraps=False)


def _index(indices: torch.Tensor, size: int, negative_wraps: bool) -> torch.Tensor:
    """One axis's int64 indices as the reference reads them; anything it refuses becomes ``size``.

    ``size`` is out of range for the consumer (torch.gather / scatter / index_select), whose aten bounds check
    then raises: the compiled path reruns the reference, which raises its own clear error.
    """
    idx = indices.to(torch.int64)
    if negative_wraps:
        idx = torch.where(idx < 0, idx + size, idx)
    return torch.where((idx < 0) | (idx >= size), size, idx)


def gather_along_axis(
    x: torch.Tensor,
    indices: torch.Tensor,
    axis: int = 0,
    validate_indices: bool = False,
    negative_wraps: bool = True,
) -> torch.Tensor:
    """``gather_along_axis`` (``torch.gather``) with data-dependent indices."""
    axis = norm_axis(axis, x.dim())
    return torch.gather(x, axis, _index(indices, x.shape[axis], negative_wraps))


def scatter_along_axis(
    data: torch.Tensor,
    indices: torch.Tensor,
    updates: torch.Tensor,
    axis: int = 0,
    mode: str = "add",
    validate_indices: bool = False,
    negative_wraps: bool = True,
) -> torch.Tensor:
    """``scatter_along_axis`` (a GNN's message aggregation) with data-dependent indices."""
    from devicefit.interp.ops.indexing import _scatter_along

    axis = norm_axis(axis, data.dim())
    return _scatter_along(data, axis, _index(indices, data.shape[axis], negative_wraps), updates, mode)


def scatter(
    data: torch.Tensor,
    indices: torch.Tensor,
    updates: torch.Tensor,
    axis: int = 0,
    mode: str = "add",
    validate_indices: bool = False,
    negative_wraps: bool = True,
) -> torch.Tensor:
    """``scatter`` (whole slices along one axis) with data-dependent indices."""
    from devicefit.interp.ops.indexing import _scatter_along

    axis = norm_axis(axis, data.dim())
    idx = _index(indices, data.shape[axis], negative_wraps).reshape(-1)
    shape = list(data.shape)
    updates = updates.reshape([*shape[:axis], idx.numel(), *shape[axis + 1 :]])
    view = [1] * data.dim()
    view[axis] = idx.numel()
    return _scatter_along(data, axis, idx.reshape(view).expand(updates.shape), updates, mode)


def _flat_offsets(indices: torch.Tensor, dims: list[int], negative_wraps: bool, limit: int) -> torch.Tensor:
    """Row-major offsets of the index tuples (last axis of ``indices``) into ``dims``; a tuple the reference
    refuses becomes ``limit`` (the flat length: out of range for the consumer)."""
    idx = indices.to(torch.int64)
    sizes = torch.tensor(dims, dtype=torch.int64)
    if negative_wraps:
        idx = torch.where(idx < 0, idx + sizes, idx)
    bad = ((idx < 0) | (idx >= sizes)).any(-1)
    strides = torch.tensor([math.prod(dims[i + 1 :]) for i in range(len(dims))], dtype=torch.int64)
    return torch.where(bad, limit, (idx * strides).sum(-1))


def gather_nd(
    x: torch.Tensor,
    indices: torch.Tensor,
    batch_dims: int = 0,
    validate_indices: bool = False,
    negative_wraps: bool = True,
) -> torch.Tensor:
    """``gather_nd`` with data-dependent indices."""
    shape = list(x.shape)
    depth = indices.shape[-1]
    inner, rest = shape[batch_dims : batch_dims + depth], shape[batch_dims + depth :]
    batch = math.prod(shape[:batch_dims])
    span = math.prod(inner)
    offsets = _flat_offsets(indices, inner, negative_wraps, span).reshape(batch, -1)
    # a refused tuple (offset = span) must not land in the next batch's block: it goes past all of them
    offsets = torch.where(offsets >= span, batch * span, offsets + torch.arange(batch).unsqueeze(1) * span)
    out = torch.index_select(x.reshape([batch * span, *rest]), 0, offsets.reshape(-1))
    return out.reshape(list(indices.shape[:-1]) + rest)


def scatter_nd(
    data: torch.Tensor,
    indices: torch.Tensor,
    updates: torch.Tensor,
    mode: str = "add",
    validate_indices: bool = False,
    negative_wraps: bool = True,
) -> torch.Tensor:
    """``scatter_nd`` (masked writes, ``index_put``) with data-dependent indices."""
    from devicefit.interp.ops.indexing import _scatter_along

    shape = list(data.shape)
    depth = indices.shape[-1]
    inner, rest = shape[:depth], shape[depth:]
    span = math.prod(inner)
    offsets = _flat_offsets(indices, inner, negative_wraps, span).reshape(-1)
    flat = data.reshape([span, *rest])
    upd = updates.reshape([offsets.numel(), *rest])
    index = offsets.reshape([-1] + [1] * len(rest)).expand(upd.shape)
    return _scatter_along(flat, 0, index, upd, mode).reshape(shape)


def _ios17(variant: Callable[..., Any]) -> Callable[..., Any]:
    """The iOS17 form of a variant: negative indices are out of bounds (the reference refuses them)."""

    def ios17(*args: Any, **kwargs: Any) -> Any:
        return variant(*args, **kwargs, negative_wraps=False)

    ios17.__name__ = f"{variant.__name__}_ios17"
    ios17.__doc__ = f"{variant.__name__} from iOS17, where negative indices are out of bounds."
    return ios17


gather_along_axis_ios17 = _ios17(gather_along_axis)
scatter_along_axis_ios17 = _ios17(scatter_along_axis)
scatter_ios17 = _ios17(scatter)
gather_nd_ios17 = _ios17(gather_nd)
scatter_nd_ios17 = _ios17(scatter_nd)


def trace_safe(reference: Callable[..., Any]) -> Callable[..., Any] | None:
    """The trace-safe variant of a reference kernel function, or None.

    Keyed by the kernel *function*, not the op type: one op has a kernel per opset with different semantics
    (gather wraps negative indices up to iOS16 and refuses them from iOS17).
    """
    from devicefit.interp.ops import indexing

    variants: dict[Any, Callable[..., Any]] = {
        getattr(indexing, "gather", None): gather,
        getattr(indexing, "gather_ios17", None): gather_ios17,
        getattr(indexing, "gather_along_axis", None): gather_along_axis,
        getattr(indexing, "gather_along_axis_ios17", None): gather_along_axis_ios17,
        getattr(indexing, "scatter_along_axis", None): scatter_along_axis,
        getattr(indexing, "scatter_along_axis_ios17", None): scatter_along_axis_ios17,
        getattr(indexing, "scatter", None): scatter,
        getattr(indexing, "scatter_ios17", None): scatter_ios17,
        getattr(indexing, "gather_nd", None): gather_nd,
        getattr(indexing, "gather_nd_ios17", None): gather_nd_ios17,
        getattr(indexing, "scatter_nd", None): scatter_nd,
        getattr(indexing, "scatter_nd_ios17", None): scatter_nd_ios17,
    }
    return variants.get(reference)
