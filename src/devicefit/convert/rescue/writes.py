"""Writes coremltools 9.0 refuses: ``Tensor.masked_scatter``, and ``scatter`` / ``scatter_add`` (and
``scatter_reduce``, in scatter.py) with an index smaller than the input on the other axes or a source larger than
the index.

Found by the differential fuzzer (tests/interp/difffuzz.py). MIL's ``scatter_along_axis`` wants ``indices``,
``updates`` and ``data`` of one shape but for the scatter axis; PyTorch writes only where the index reaches and
reads the source only at the index's extent. Such a scatter becomes MIL ``scatter_nd`` with every element's full
coordinate (the index along ``dim``, the element's own position on the other axes). All of it moves or combines
values the way PyTorch's kernel does, so results are exact (``add`` of repeated indices sums in index order).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import broadcast_to, frontend, select
from devicefit.convert.rescue._registry import DELEGATED, rescue


def _static(shape: Any) -> list[int] | None:
    dims = list(shape)
    if not all(isinstance(d, int | np.integer) for d in dims):
        return None
    return [int(d) for d in dims]


def needs_nd(data: Any, index: Any, updates: Any, dim: int) -> bool:
    """Whether a scatter along ``dim`` falls outside ``scatter_along_axis``: the index is smaller than ``data`` on
    another axis, or the source is not the index's shape (static shapes only; else False)."""
    data_shape, index_shape = _static(data.shape), _static(index.shape)
    if data_shape is None or index_shape is None or len(data_shape) != len(index_shape):
        return False
    smaller = any(a != b for k, (a, b) in enumerate(zip(data_shape, index_shape)) if k != dim)
    source = _static(getattr(updates, "shape", ())) if hasattr(updates, "shape") else None
    return smaller or (source is not None and len(source) == len(index_shape) and source != index_shape)


def scatter_along(data: Any, index: Any, updates: Any, dim: int, mode: str, name: str | None = None) -> Any:
    """``data.scatter(dim, index, updates)`` with MIL ``mode`` (update / add / mul / max / min): MIL
    ``scatter_along_axis`` when the shapes fit it, else ``scatter_nd`` of full coordinates. ``updates`` is cut to
    the index's shape (PyTorch reads only that part) and given ``data``'s dtype; a scalar fills that shape."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.type_mapping import builtin_to_string, nptype_from_builtin

    kwargs = {"name": name} if name is not None else {}
    index_shape = _static(index.shape)
    if index_shape is None:
        raise NotImplementedError(f"scatter with an index of flexible shape {index.shape}")
    dtype = nptype_from_builtin(data.dtype)
    if not hasattr(updates, "shape") or len(updates.shape) == 0:
        value = updates.val if hasattr(updates, "val") else updates
        if value is None:
            raise NotImplementedError("scatter of a scalar computed at run time into a narrower index")
        updates = mb.const(val=np.full(index_shape, value, dtype=dtype))
    elif _static(updates.shape) != index_shape:
        updates = mb.slice_by_index(x=updates, begin=[0] * len(index_shape), end=index_shape)
    if updates.dtype != data.dtype:
        updates = mb.cast(x=updates, dtype=builtin_to_string(data.dtype))
    if not needs_nd(data, index, updates, dim):
        index = mb.cast(x=index, dtype="int32")
        return mb.scatter_along_axis(data=data, indices=index, updates=updates, axis=dim, mode=mode, **kwargs)
    grids = np.indices(index_shape, dtype=np.int32)
    if index.val is not None:
        grids[dim] = np.asarray(index.val, dtype=np.int32)
        coords: Any = np.stack(list(grids), axis=-1)
    else:
        parts = [
            mb.cast(x=index, dtype="int32") if k == dim else mb.const(val=grids[k])
            for k in range(len(index_shape))
        ]
        coords = mb.stack(values=parts, axis=len(index_shape))
    return mb.scatter_nd(data=data, indices=coords, updates=updates, mode=mode, **kwargs)


@rescue(
    "scatter_add",
    "override: coremltools 9.0 refuses scatter_add with an index smaller than the input on another axis, or a "
    "source larger than the index (PyTorch writes / reads only the index's extent); other uses stay with it",
    override=True,
)
def scatter_add(context: Any, node: Any) -> object:
    """``x.scatter_add(dim, index, src)`` outside ``scatter_along_axis``'s shapes: :func:`scatter_along`."""
    inputs = frontend()._get_inputs(context, node, expected=4)
    x, dim_var, index, src = inputs
    if dim_var.val is None or x.rank == 0:
        frontend().scatter_add(context, node)
        return DELEGATED
    dim = int(dim_var.val) % x.rank
    if not needs_nd(x, index, src, dim):
        frontend().scatter_add(context, node)
        return DELEGATED
    context.add(scatter_along(x, index, src, dim, "add", name=node.name), torch_name=node.name)
    return None


@rescue(
    "masked_scatter",
    "coremltools 9.0 has no translation (Tensor.masked_scatter: writing a source's values, in order, where a mask "
    "is true)",
)
def masked_scatter(context: Any, node: Any) -> None:
    """``x.masked_scatter(mask, source)``: the k-th true position of ``mask`` (broadcast to ``x``, row-major)
    takes ``source.flatten()[k]``.

    A cumulative sum of the flattened mask numbers the true positions; a gather of the flattened
    source at those numbers (clamped for the false ones, which keep ``x`` through a ``select``) gives the values.
    Static shapes; the mask and the source may be computed at run time.
    """
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.type_mapping import builtin_to_string

    x, mask, source = frontend()._get_inputs(context, node, expected=3)
    x_shape, mask_shape, source_shape = _static(x.shape), _static(mask.shape), _static(source.shape)
    if not x_shape or mask_shape is None or source_shape is None:
        raise NotImplementedError("masked_scatter needs static shapes of rank 1 or more")
    # the out-of-place form broadcasts x and the mask against each other
    shape = [int(d) for d in np.broadcast_shapes(tuple(x_shape), tuple(mask_shape))]
    x = broadcast_to(x, shape)
    mask = broadcast_to(mb.cast(x=mask, dtype="int32"), shape)
    flat = mb.reshape(x=mask, shape=[-1])
    # NOTE: an inclusive sum minus the mask, not exclusive=True: coremltools' constant folding of an exclusive
    # cumsum fails (np.zeros(shape, data)) when the mask is a constant
    numbers = mb.sub(x=mb.cumsum(x=flat, axis=0), y=flat)
    count = int(np.prod(source_shape)) if source_shape else 1
    numbers = mb.minimum(x=numbers, y=np.int32(max(count - 1, 0)))
    values = mb.reshape(x=source, shape=[-1])
    if values.dtype != x.dtype:
        values = mb.cast(x=values, dtype=builtin_to_string(x.dtype))
    taken = mb.reshape(x=mb.gather(x=values, indices=numbers, axis=0), shape=shape)
    out = select(cond=mb.cast(x=mask, dtype="bool"), a=taken, b=x)
    context.add(mb.identity(x=out, name=node.name), torch_name=node.name)
