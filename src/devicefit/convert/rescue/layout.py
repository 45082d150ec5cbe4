"""Layout ops coremltools 9.0 lacks or mishandles: ``diagonal``, ``rot90``, ``movedim``, ``broadcast_to``,
``cartesian_prod``, ``roll`` without dims, ``tril_indices`` / ``triu_indices``, ``combinations``,
``fft.fftshift`` / ``ifftshift``.

All are data movement (transposes, reverses, gathers, tiles) or constants, so every result is exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, frontend, tail_shape
from devicefit.convert.rescue._registry import DELEGATED, rescue


def _static(size: Any, what: str) -> int:
    if not isinstance(size, int | np.integer):
        raise NotImplementedError(f"{what} along an axis of flexible length")
    return int(size)


def _ints(value: Any) -> list[int]:
    return [int(v) for v in np.atleast_1d(np.asarray(const_value(value)))]


@rescue(
    "diagonal",
    "override: coremltools 9.0 refuses an offset or other dims, and for offset 0 returns the whole matrix with "
    "zeros off the diagonal (band_part) instead of the diagonal (torch.export: a wrong shape, silently)",
    override=True,
    aliases=("diagonal_copy",),
)
def diagonal(context: Any, node: Any) -> None:
    """``torch.diagonal(x, offset=0, dim1=0, dim2=1)``: ``dim1`` and ``dim2`` moved last, flattened together, and
    one gather of the diagonal's constant positions; the diagonal is the last axis (PyTorch's layout). Static
    sizes along ``dim1`` / ``dim2``; an empty diagonal is refused (Core ML has no empty tensors)."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    offset = int(const_value(arg(context, node, inputs, 1, "offset"), 0))
    dim1 = int(const_value(arg(context, node, inputs, 2, "dim1"), 0)) % x.rank
    dim2 = int(const_value(arg(context, node, inputs, 3, "dim2"), 1)) % x.rank
    if dim1 == dim2:
        raise ValueError(f"diagonal: dim1 and dim2 are the same axis ({dim1})")
    rows, cols = _static(x.shape[dim1], "diagonal"), _static(x.shape[dim2], "diagonal")
    start_row, start_col = max(-offset, 0), max(offset, 0)
    length = max(0, min(rows - start_row, cols - start_col))
    if length == 0:
        raise NotImplementedError(f"diagonal {offset} of a {rows}x{cols} matrix is empty")
    perm = [d for d in range(x.rank) if d not in (dim1, dim2)] + [dim1, dim2]
    if perm != list(range(x.rank)):
        x = mb.transpose(x=x, perm=perm)
    flat = mb.reshape(x=x, shape=tail_shape(x, x.rank - 2, [rows * cols]))
    positions = (np.arange(length) + start_row) * cols + np.arange(length) + start_col
    out = mb.gather(x=flat, indices=positions.astype(np.int32), axis=-1, name=node.name)
    context.add(out, torch_name=node.name)


@rescue("rot90", "coremltools 9.0 has no translation (torch.rot90: rotation augmentations, equivariant nets)")
def rot90(context: Any, node: Any) -> None:
    """``torch.rot90(x, k=1, dims=[0, 1])`` as PyTorch builds it: ``k % 4 == 1``: reverse ``dims[1]`` then swap
    the two axes; 2: reverse both; 3: reverse ``dims[0]`` then swap."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    k = int(const_value(arg(context, node, inputs, 1, "k"), 1)) % 4
    dims_arg = arg(context, node, inputs, 2, "dims")
    dims = _ints(dims_arg) if dims_arg is not None else [0, 1]
    if len(dims) != 2 or dims[0] % x.rank == dims[1] % x.rank:
        raise ValueError(f"rot90: dims must name two different axes (got {dims})")
    first, second = dims[0] % x.rank, dims[1] % x.rank
    swap = list(range(x.rank))
    swap[first], swap[second] = second, first
    if k == 0:
        out = mb.identity(x=x, name=node.name)
    elif k == 2:
        out = mb.reverse(x=x, axes=[first, second], name=node.name)
    else:
        flipped = mb.reverse(x=x, axes=[second if k == 1 else first])
        out = mb.transpose(x=flipped, perm=swap, name=node.name)
    context.add(out, torch_name=node.name)


@rescue(
    "movedim", "coremltools 9.0 has no translation on TorchScript (torch.movedim)", aliases=("movedim.int",)
)
def movedim(context: Any, node: Any) -> None:
    """``torch.movedim(x, source, destination)``: one ``transpose`` with PyTorch's order (the moved axes at
    their destinations, the others in their original order in the remaining places)."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, expected=3)
    x = inputs[0]
    source = [d % x.rank for d in _ints(inputs[1])]
    destination = [d % x.rank for d in _ints(inputs[2])]
    if (
        len(source) != len(destination)
        or len(set(source)) != len(source)
        or len(set(destination)) != len(source)
    ):
        raise ValueError(f"movedim: source {source} and destination {destination} do not pair up")
    perm = [-1] * x.rank
    for s, d in zip(source, destination):
        perm[d] = s
    rest = iter(d for d in range(x.rank) if d not in source)
    perm = [p if p >= 0 else next(rest) for p in perm]
    if perm == list(range(x.rank)):
        out = mb.identity(x=x, name=node.name)
    else:
        out = mb.transpose(x=x, perm=perm, name=node.name)
    context.add(out, torch_name=node.name)


@rescue("broadcast_to", "coremltools 9.0 has no translation on TorchScript (torch.broadcast_to)")
def broadcast_to(context: Any, node: Any) -> object:
    """``torch.broadcast_to(x, shape)``: coremltools' own ``expand`` (the same op under another name)."""
    frontend().expand(context, node)
    return None


@rescue("cartesian_prod", "coremltools 9.0 has no translation on TorchScript (torch.cartesian_prod)")
def cartesian_prod(context: Any, node: Any) -> None:
    """``torch.cartesian_prod(*vectors)``: each vector tiled over the grid of all of them (``indexing="ij"``),
    flattened, and stacked as columns; one vector is returned as it is. Static lengths."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    vectors = list(inputs[0]) if isinstance(inputs[0], list | tuple) else list(inputs)
    vectors = frontend().promote_input_dtypes(vectors)
    if len(vectors) == 1:
        context.add(mb.identity(x=vectors[0], name=node.name), torch_name=node.name)
        return
    lengths = [_static(v.shape[0], "cartesian_prod") for v in vectors]
    columns = []
    for axis, vector in enumerate(vectors):
        shape = [1] * len(vectors)
        shape[axis] = lengths[axis]
        reps = [n if a != axis else 1 for a, n in enumerate(lengths)]
        grid = mb.tile(x=mb.reshape(x=vector, shape=shape), reps=reps)
        columns.append(mb.reshape(x=grid, shape=[-1]))
    context.add(mb.stack(values=columns, axis=1, name=node.name), torch_name=node.name)


def _cut_first(x: Any, axis: int, size: int, cut: int) -> Any:
    """``x`` rolled along ``axis`` (of static ``size``) so that ``x[cut:]`` comes first: one slice pair and a
    concat (``x`` itself when ``cut`` is 0)."""
    from coremltools.converters.mil.mil import Builder as mb

    if cut == 0:
        return x
    begin, end = [0] * x.rank, [0] * x.rank
    mask = [True] * x.rank
    mask[axis] = False
    begin[axis], end[axis] = cut, size
    head = mb.slice_by_index(x=x, begin=begin, end=end, begin_mask=mask, end_mask=mask)
    begin[axis], end[axis] = 0, cut
    tail = mb.slice_by_index(x=x, begin=begin, end=end, begin_mask=mask, end_mask=mask)
    return mb.concat(values=[head, tail], axis=axis)


@rescue(
    "roll",
    "override: coremltools 9.0 fails on torch.roll without dims on torch.export (it expects three inputs)",
    override=True,
)
def roll(context: Any, node: Any) -> object:
    """``torch.roll(x, shifts)`` without ``dims``: the flattened tensor rolled (one slice pair and a concat),
    reshaped back. With ``dims``, coremltools' own translation."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    dims = arg(context, node, inputs, 2, "dims")
    if dims is not None and len(_ints(dims)) > 0:
        if len(inputs) < 3:  # torch.export gave dims as a keyword: coremltools reads positions only
            raise NotImplementedError("roll with dims given as a keyword")
        frontend().roll(context, node)
        return DELEGATED
    x = inputs[0]
    shifts = _ints(inputs[1])
    if len(shifts) != 1:
        raise ValueError(f"roll without dims takes one shift (got {shifts})")
    size = 1
    for d in x.shape:
        size *= _static(d, "roll")
    cut = (size - shifts[0] % size) % size if size else 0
    flat = _cut_first(mb.reshape(x=x, shape=[-1]), 0, size, cut)
    shape = [int(d) for d in x.shape] or [1]
    out = mb.reshape(x=flat, shape=shape)
    if x.rank == 0:
        out = mb.squeeze(x=out)
    context.add(mb.identity(x=out, name=node.name), torch_name=node.name)
    return None


def _triangle_indices(context: Any, node: Any, lower: bool) -> None:
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    rows, cols = int(const_value(inputs[0])), int(const_value(inputs[1]))
    offset = int(const_value(arg(context, node, inputs, 2, "offset"), 0))
    mask = (
        np.tril(np.ones((rows, cols), bool), offset)
        if lower
        else np.triu(np.ones((rows, cols), bool), offset)
    )
    indices = np.stack(np.nonzero(mask)).astype(np.int32)  # row-major order, as PyTorch lists them
    if indices.shape[1] == 0:
        raise NotImplementedError(
            f"{'tril' if lower else 'triu'}_indices of nothing (Core ML has no empty tensors)"
        )
    context.add(mb.const(val=indices, name=node.name), torch_name=node.name)


@rescue("tril_indices", "coremltools 9.0 has no translation (torch.tril_indices: pairwise-feature indexing)")
def tril_indices(context: Any, node: Any) -> None:
    """``torch.tril_indices(row, col, offset)``: a constant ``(2, count)`` int32 table."""
    _triangle_indices(context, node, lower=True)


@rescue("triu_indices", "coremltools 9.0 has no translation (torch.triu_indices: pairwise-feature indexing)")
def triu_indices(context: Any, node: Any) -> None:
    """``torch.triu_indices(row, col, offset)``: a constant ``(2, count)`` int32 table."""
    _triangle_indices(context, node, lower=False)


@rescue("combinations", "coremltools 9.0 has no translation (torch.combinations: pairwise features)")
def combinations(context: Any, node: Any) -> None:
    """``torch.combinations(x, r=2, with_replacement=False)`` of a 1-D ``x`` of static length: one gather of
    ``itertools.combinations`` (``_with_replacement``) of the positions, PyTorch's order; exact. An empty result
    (``r = 0``, ``r > len(x)``) is refused (Core ML tensors cannot be empty)."""
    import itertools

    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    r = int(const_value(arg(context, node, inputs, 1, "r"), 2))
    replace = bool(const_value(arg(context, node, inputs, 2, "with_replacement"), False))
    if x.rank != 1 or any_symbolic(x.shape):
        raise NotImplementedError(f"combinations takes a 1-D tensor of static length (got shape {x.shape})")
    pick = itertools.combinations_with_replacement if replace else itertools.combinations
    table = np.array(list(pick(range(int(x.shape[0])), r)), dtype=np.int32)
    if r < 1 or table.size == 0:
        raise ValueError(f"combinations of {int(x.shape[0])} values taken {r} at a time is empty")
    out = mb.reshape(x=mb.gather(x=x, indices=table.ravel(), axis=0), shape=[len(table), r])
    context.add(mb.identity(x=out, name=node.name), torch_name=node.name)


def _shift(context: Any, node: Any, inverse: bool) -> None:
    """``torch.fft.fftshift(x, dim=None)`` / ``ifftshift``: a roll by ``n // 2`` (inverse: ``-(n // 2)``) along
    each ``dim`` (every axis when None), one slice pair and a concat per axis; exact."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    dims = arg(context, node, inputs, 1, "dim")
    axes = range(x.rank) if dims is None or const_value(dims) is None else [d % x.rank for d in _ints(dims)]
    out = x
    for axis in axes:
        size = _static(x.shape[axis], "fftshift")
        shift = -(size // 2) if inverse else size // 2
        out = _cut_first(out, axis, size, -shift % size)  # rolled by shift: out[i] = x[(i + cut) % size]
    context.add(mb.identity(x=out, name=node.name), torch_name=node.name)


@rescue("fft_fftshift", "coremltools 9.0 has no translation (torch.fft.fftshift: centred spectra)")
def fft_fftshift(context: Any, node: Any) -> None:
    _shift(context, node, inverse=False)


@rescue("fft_ifftshift", "coremltools 9.0 has no translation (torch.fft.ifftshift)")
def fft_ifftshift(context: Any, node: Any) -> None:
    _shift(context, node, inverse=True)
