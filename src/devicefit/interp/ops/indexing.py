"""Indexing, selection and sorting ops (MIL ``scatter_gather`` and parts of ``tensor_operation``).

gather, gather_along_axis, gather_nd, scatter, scatter_along_axis, scatter_nd, select, topk, argsort,
cumsum, one_hot, non_zero, band_part.

Out-of-range indices raise :class:`InputError` whatever ``validate_indices`` says: on device they are
undefined behaviour (or a runtime error with ``validate_indices=True``), so the reference interpreter refuses
to invent a value. Negative indices count from the end up to iOS16; from iOS17 the spec makes them
out-of-bound (coremltools rewrites them to positive ones before iOS17 ops), so the ``*_ios17`` variants refuse
them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from devicefit.errors import InputError, ModelLoadError
from devicefit.interp.ops._util import norm_axis
from devicefit.interp.registry import bool_, int_, register, str_


def _wrap_indices(
    indices: torch.Tensor, size: torch.Tensor | int, op: str, negative_wraps: bool = True
) -> torch.Tensor:
    """int64 indices, negatives wrapped when ``negative_wraps``; raise on anything outside ``[0, size)``."""
    idx = indices.to(torch.int64)
    if isinstance(size, int) and torch._C._functorch.is_batchedtensor(idx):
        # NOTE: under torch.func.vmap (compress's batched evaluation) no value can be read into Python to
        # raise InputError. An index out of range becomes `size`, which every consumer of a one-axis index
        # (index_select, gather, scatter, advanced indexing) refuses with its own error: never a silent read.
        if negative_wraps:
            idx = torch.where(idx < 0, idx + size, idx)
        return torch.where((idx < 0) | (idx >= size), size, idx)
    if isinstance(size, int) and idx.numel():
        # fast path for one axis size: a single min/max pass decides whether any work is needed
        lo, hi = torch.aminmax(idx)
        if int(lo) >= 0 and int(hi) < size:
            return idx
    if negative_wraps:
        idx = torch.where(idx < 0, idx + size, idx)
    sizes = torch.as_tensor(size).expand_as(idx)
    bad = (idx < 0) | (idx >= sizes)
    if bool(bad.any()):
        at = tuple(int(i) for i in bad.nonzero()[0])
        why = "" if negative_wraps else " (from iOS17 negative indices are out of bounds too)"
        raise InputError(
            f"{op}: index {int(indices[at])} at position {at} is out of range for an axis of size "
            f"{int(sizes[at])}{why}; check the values fed to the index inputs"
        )
    return idx


# ---------------------------------------------------------------- gathers
_GATHER: dict[str, Callable[[Any], Any]] = {"axis": int_, "batch_dims": int_, "validate_indices": bool_}


@register("gather", attrs=_GATHER)
def gather(x, indices, axis=0, batch_dims=0, validate_indices=False, negative_wraps=True):
    axis = norm_axis(axis, x.dim())
    shape = list(x.shape)
    idx = _wrap_indices(indices, shape[axis], "gather", negative_wraps)
    if batch_dims == 0:
        return torch.index_select(x, axis, idx.reshape(-1)).reshape(
            shape[:axis] + list(idx.shape) + shape[axis + 1 :]
        )
    # One path for every batch_dims (0 included): x -> [B, P, A, S], indices -> [B, M].
    batch = math.prod(shape[:batch_dims])
    xr = x.reshape(batch, math.prod(shape[batch_dims:axis]), shape[axis], -1).permute(0, 2, 1, 3)
    ir = idx.reshape(batch, -1)
    out = xr[torch.arange(batch).unsqueeze(1), ir].permute(0, 2, 1, 3)  # [B, P, M, S]
    return out.reshape(shape[:axis] + list(idx.shape[batch_dims:]) + shape[axis + 1 :])


@register("gather_along_axis", attrs={"axis": int_, "validate_indices": bool_})
def gather_along_axis(x, indices, axis=0, validate_indices=False, negative_wraps=True):
    axis = norm_axis(axis, x.dim())
    return torch.gather(x, axis, _wrap_indices(indices, x.shape[axis], "gather_along_axis", negative_wraps))


def _linear_index(indices: torch.Tensor, dims: list[int], op: str, negative_wraps: bool) -> torch.Tensor:
    """Row-major flat offsets of the index tuples in the last axis of ``indices`` into ``dims``."""
    idx = _wrap_indices(indices, torch.tensor(dims, dtype=torch.int64), op, negative_wraps)
    strides = [math.prod(dims[i + 1 :]) for i in range(len(dims))]
    return (idx * torch.tensor(strides, dtype=torch.int64)).sum(-1)


@register("gather_nd", attrs={"batch_dims": int_, "validate_indices": bool_})
def gather_nd(x, indices, batch_dims=0, validate_indices=False, negative_wraps=True):
    shape = list(x.shape)
    depth = indices.shape[-1]
    inner, rest = shape[batch_dims : batch_dims + depth], shape[batch_dims + depth :]
    batch = math.prod(shape[:batch_dims])
    offsets = _linear_index(indices, inner, "gather_nd", negative_wraps).reshape(batch, -1)
    offsets = offsets + torch.arange(batch).unsqueeze(1) * math.prod(inner)
    out = x.reshape([batch * math.prod(inner), *rest])[offsets.reshape(-1)]
    return out.reshape(list(indices.shape[:-1]) + rest)


# ---------------------------------------------------------------- scatters
def _div_into(out: torch.Tensor, axis: int, index: torch.Tensor, updates: torch.Tensor) -> torch.Tensor:
    # divide by the product of all updates landing on an element (untouched elements divide by 1)
    den = torch.ones_like(out).scatter_reduce_(axis, index, updates, "prod")
    if out.is_floating_point():
        return out / den
    return torch.div(out, den, rounding_mode="floor")


_SCATTER_MODES: dict[str, Callable[[torch.Tensor, int, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "update": lambda out, a, i, u: out.scatter_(a, i, u),
    "add": lambda out, a, i, u: out.scatter_add_(a, i, u),
    "sub": lambda out, a, i, u: out.scatter_add_(a, i, -u),
    "mul": lambda out, a, i, u: out.scatter_reduce_(a, i, u, "prod"),
    "div": _div_into,
    "max": lambda out, a, i, u: out.scatter_reduce_(a, i, u, "amax"),
    "min": lambda out, a, i, u: out.scatter_reduce_(a, i, u, "amin"),
}


def _scatter_along(data, axis, index, updates, mode):
    try:
        fn = _SCATTER_MODES[mode]
    except KeyError:
        raise ModelLoadError(f"scatter mode {mode!r} is not one of {sorted(_SCATTER_MODES)}") from None
    return fn(data.clone(), axis, index, updates.to(data.dtype))


_SCATTER: dict[str, Callable[[Any], Any]] = {"axis": int_, "mode": str_, "validate_indices": bool_}


@register("scatter", attrs=_SCATTER)
def scatter(data, indices, updates, axis=0, mode="add", validate_indices=False, negative_wraps=True):
    axis = norm_axis(axis, data.dim())
    idx = _wrap_indices(indices, data.shape[axis], "scatter", negative_wraps).reshape(-1)
    shape = list(data.shape)
    updates = updates.reshape([*shape[:axis], idx.numel(), *shape[axis + 1 :]])
    view = [1] * data.dim()
    view[axis] = idx.numel()
    return _scatter_along(data, axis, idx.reshape(view).expand(updates.shape), updates, mode)


@register("scatter_along_axis", attrs=_SCATTER)
def scatter_along_axis(
    data, indices, updates, axis=0, mode="add", validate_indices=False, negative_wraps=True
):
    axis = norm_axis(axis, data.dim())
    idx = _wrap_indices(indices, data.shape[axis], "scatter_along_axis", negative_wraps)
    return _scatter_along(data, axis, idx, updates, mode)


@register("scatter_nd", attrs={"mode": str_, "validate_indices": bool_})
def scatter_nd(data, indices, updates, mode="add", validate_indices=False, negative_wraps=True):
    shape = list(data.shape)
    depth = indices.shape[-1]
    inner, rest = shape[:depth], shape[depth:]
    offsets = _linear_index(indices, inner, "scatter_nd", negative_wraps).reshape(-1)
    flat = data.reshape([math.prod(inner), *rest])
    upd = updates.reshape([offsets.numel(), *rest])
    index = offsets.reshape([-1] + [1] * len(rest)).expand(upd.shape)
    return _scatter_along(flat, 0, index, upd, mode).reshape(shape)


# ------------------------------------------------- iOS17: negative indices are out of bounds
# (``negative_wraps`` is no MIL input, so the loader leaves it at the default each registration gives it)
@register("gather", since="iOS17", attrs=_GATHER)
def gather_ios17(x, indices, axis=0, batch_dims=0, validate_indices=False):
    return gather(x, indices, axis, batch_dims, negative_wraps=False)


@register("gather_along_axis", since="iOS17", attrs={"axis": int_, "validate_indices": bool_})
def gather_along_axis_ios17(x, indices, axis=0, validate_indices=False):
    return gather_along_axis(x, indices, axis, negative_wraps=False)


@register("gather_nd", since="iOS17", attrs={"batch_dims": int_, "validate_indices": bool_})
def gather_nd_ios17(x, indices, batch_dims=0, validate_indices=False):
    return gather_nd(x, indices, batch_dims, negative_wraps=False)


@register("scatter", since="iOS17", attrs=_SCATTER)
def scatter_ios17(data, indices, updates, axis=0, mode="add", validate_indices=False):
    return scatter(data, indices, updates, axis, mode, negative_wraps=False)


@register("scatter_along_axis", since="iOS17", attrs=_SCATTER)
def scatter_along_axis_ios17(data, indices, updates, axis=0, mode="add", validate_indices=False):
    return scatter_along_axis(data, indices, updates, axis, mode, negative_wraps=False)


@register("scatter_nd", since="iOS17", attrs={"mode": str_, "validate_indices": bool_})
def scatter_nd_ios17(data, indices, updates, mode="add", validate_indices=False):
    return scatter_nd(data, indices, updates, mode, negative_wraps=False)


# ---------------------------------------------------------------- selection and sorting
@register("select")
def select(cond, a, b):
    out = torch.where(cond.to(torch.bool), a, b)
    return out.to(a.dtype) if out.dtype != a.dtype else out


@register(
    "topk",
    attrs={
        "k": int_,
        "axis": int_,
        "ascending": bool_,
        "sort": bool_,
        "return_indices": bool_,
        "output_indices_dtype": str_,
    },
)
def topk(x, k=1, axis=-1, ascending=False, sort=True, return_indices=True, output_indices_dtype="int32"):
    # iOS16 adds sort / return_indices and iOS17 output_indices_dtype; their defaults are the iOS15
    # behaviour, so one kernel serves every opset. Always sorted (a valid "unsorted" order too).
    axis = norm_axis(axis, x.dim())
    k = x.shape[axis] if k == -1 else k
    # NOTE: stable sort: ties keep their original order, lowest index first.
    values, idx = torch.sort(x, dim=axis, descending=not ascending, stable=True)
    values, idx = values.narrow(axis, 0, k), idx.narrow(axis, 0, k).to(torch.int32)
    return (values, idx) if return_indices else values


@register("argsort", attrs={"axis": int_, "ascending": bool_})
def argsort(x, axis=-1, ascending=False):
    return torch.argsort(x, dim=axis, descending=not ascending, stable=True).to(torch.int32)


@register("cumsum", attrs={"axis": int_, "exclusive": bool_, "reverse": bool_})
def cumsum(x, axis=0, exclusive=False, reverse=False):
    axis = norm_axis(axis, x.dim())
    if reverse:
        x = torch.flip(x, dims=[axis])
    out = torch.cumsum(x, dim=axis, dtype=x.dtype)
    if exclusive:
        # shift by one instead of subtracting x, so float sums round exactly as the inclusive ones
        zeros = torch.zeros_like(x.narrow(axis, 0, 1))
        out = torch.cat([zeros, out.narrow(axis, 0, x.shape[axis] - 1)], dim=axis)
    return torch.flip(out, dims=[axis]) if reverse else out


@register("one_hot", attrs={"one_hot_vector_size": int_, "axis": int_})
def one_hot(indices, one_hot_vector_size, axis=-1, on_value=1, off_value=0):
    axis = norm_axis(axis, indices.dim() + 1)
    view = [1] * (indices.dim() + 1)
    view[axis] = one_hot_vector_size
    classes = torch.arange(one_hot_vector_size).reshape(view)
    # out-of-range indices match no class and give an all-off vector (as TensorFlow's one_hot)
    hot = indices.to(torch.int64).unsqueeze(axis) == classes
    on = torch.as_tensor(on_value, dtype=None if isinstance(on_value, torch.Tensor) else torch.int32)
    off = torch.as_tensor(off_value, dtype=on.dtype)
    return torch.where(hot, on, off.to(on.dtype))


@register("non_zero")
def non_zero(x):
    return torch.nonzero(x).to(torch.int32)


@register("band_part", attrs={"lower": int_, "upper": int_})
def band_part(x, lower=-1, upper=-1):
    rows = torch.arange(x.shape[-2]).unsqueeze(1)
    cols = torch.arange(x.shape[-1]).unsqueeze(0)
    # NOTE: the bounds are Python ints: a side < 0 is unbounded. Not `(lower < 0) | mask`, which traces as
    # bitwise_or(Tensor, bool), an op TorchScript's alias analysis rejects (the compiled path fell back)
    keep = torch.ones((x.shape[-2], x.shape[-1]), dtype=torch.bool)
    if lower >= 0:
        keep = keep & (rows - cols <= lower)
    if upper >= 0:
        keep = keep & (cols - rows <= upper)
    return torch.where(keep, x, torch.zeros((), dtype=x.dtype))
