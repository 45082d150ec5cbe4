"""``max_pool2d``'s indices and ``max_unpool2d`` (SegNet-style decoders), which coremltools 9.0 lacks.

coremltools translates ``max_pool2d_with_indices`` but binds no indices (its output is ``None``), so a model that
reads them (``F.max_unpool2d``) fails to convert. Here the pooled values stay coremltools' own MIL ``max_pool``
and the indices are added beside them (dead code that coremltools' passes remove when nothing reads them).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, frontend, select
from devicefit.convert.rescue._registry import DELEGATED, rescue
from devicefit.convert.rescue.pooling import _per_axis, _plain_max_pool


def _window_indices(x: Any, best: Any, kernel: list[int], stride: list[int], padding: list[int]) -> Any:
    """PyTorch's index of each window's maximum: the flat position ``h * W + w`` in the input plane of the
    first tap (row-major over the kernel) equal to the window's maximum ``best``. Padding taps never count."""
    from coremltools.converters.mil.mil import Builder as mb

    height, width = (int(d) for d in x.shape[-2:])
    rows, cols = (int(d) for d in best.shape[-2:])
    lead = x.rank - 2
    pads = [padding[0], padding[0] + max(0, (rows - 1) * stride[0] + kernel[0] - height - 2 * padding[0])]
    pads += [padding[1], padding[1] + max(0, (cols - 1) * stride[1] + kernel[1] - width - 2 * padding[1])]
    padded = mb.pad(x=x, pad=[0] * (2 * lead) + pads, mode="constant", constant_val=0.0)
    index = mb.cast(x=mb.fill(shape=mb.shape(x=best), value=0.0), dtype="int32")
    # the taps in reverse order, so the first tap holding the maximum is the last one written
    for i, j in reversed(list(itertools.product(range(kernel[0]), range(kernel[1])))):
        begin = [0] * lead + [i, j]
        end = [0] * lead + [i + (rows - 1) * stride[0] + 1, j + (cols - 1) * stride[1] + 1]
        mask = [True] * lead + [False, False]
        tap = mb.slice_by_index(
            x=padded, begin=begin, end=end, stride=[1] * lead + stride, begin_mask=mask, end_mask=mask
        )
        h = np.arange(rows)[:, None] * stride[0] + i - padding[0]
        w = np.arange(cols)[None, :] * stride[1] + j - padding[1]
        inside = (h >= 0) & (h < height) & (w >= 0) & (w < width)
        hit = mb.logical_and(x=mb.equal(x=tap, y=best), y=inside)
        index = select(cond=hit, a=(h * width + w).astype(np.int32), b=index)
    return index


def _bound_values(context: Any, node: Any) -> Any:
    """The pooled values coremltools' own translation bound to ``node`` (it binds ``(values, None)`` or values)."""
    bound = context[node.name]
    return bound[0] if isinstance(bound, tuple) else bound


def _bind_with_indices(context: Any, node: Any, values: Any, indices: Any) -> None:
    """``node``'s values and PyTorch's indices, over what coremltools bound: one name each (TorchScript) or a
    tuple its getitem nodes index (torch.export)."""
    if len(node.outputs) > 1:
        context.add(values, torch_name=node.outputs[0], override=True)
        context.add(indices, torch_name=node.outputs[1], override=True)
    else:
        context.add((values, indices), torch_name=node.name, override=True)


@rescue(
    "max_pool2d_with_indices",
    "override: coremltools 9.0 binds no indices for max_pool2d(return_indices=True) (F.max_unpool2d reads them)",
    override=True,
)
def max_pool2d_with_indices(context: Any, node: Any) -> object:
    """coremltools' pooled values with PyTorch's indices beside them (no dilation; static spatial sizes). With
    dilation, or flexible sizes, coremltools' translation as it is (no indices)."""
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    x = inputs[0]
    kernel = _per_axis(inputs[1], 2, [])
    stride = _per_axis(arg(context, node, inputs, 2, "stride"), 2, kernel) or kernel
    padding = _per_axis(arg(context, node, inputs, 3, "padding"), 2, [0, 0])
    dilation = _per_axis(arg(context, node, inputs, 4, "dilation"), 2, [1, 1])
    ceil_mode = bool(const_value(arg(context, node, inputs, 5, "ceil_mode"), False))
    if len(inputs) < 3 and all(d == 1 for d in dilation):  # torch.export left out the default stride
        values = _plain_max_pool(x, kernel, stride, padding, ceil_mode, node.name)
    else:
        frontend().max_pool1d(context, node)  # coremltools' translation of every rank, values only
        if any(d != 1 for d in dilation) or any_symbolic(x.shape[-2:]):
            return DELEGATED
        values = _bound_values(context, node)
    if any_symbolic(x.shape[-2:]):
        context.add((values, None), torch_name=node.name)
        return None
    indices = _window_indices(x, values, kernel, stride, padding)
    _bind_with_indices(context, node, values, indices)
    return None


@rescue("max_unpool2d", "coremltools 9.0 has no translation (nn.MaxUnpool2d: SegNet-style decoders)")
def max_unpool2d(context: Any, node: Any) -> None:
    """``F.max_unpool2d(x, indices, output_size)``: zeros of the output plane with each value written at its
    flat index (MIL ``scatter_along_axis``, ``mode="update"``); static shapes."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic
    from coremltools.converters.mil.mil.types.type_mapping import nptype_from_builtin

    inputs = frontend()._get_inputs(context, node, min_expected=3)
    x, indices = inputs[0], inputs[1]
    size = [int(v) for v in np.asarray(const_value(inputs[2])).ravel()][-2:]
    if any_symbolic(x.shape) or len(size) != 2:
        raise NotImplementedError("max_unpool2d needs static shapes and a constant output size")
    lead = [int(d) for d in x.shape[:-2]]
    plane = size[0] * size[1]
    zeros = np.zeros([*lead, plane], dtype=nptype_from_builtin(x.dtype))
    flat_values = mb.reshape(x=x, shape=[*lead, -1])
    flat_indices = mb.reshape(x=mb.cast(x=indices, dtype="int32"), shape=[*lead, -1])
    written = mb.scatter_along_axis(
        data=zeros, indices=flat_indices, updates=flat_values, axis=len(lead), mode="update"
    )
    context.add(mb.reshape(x=written, shape=lead + size, name=node.name), torch_name=node.name)


def _adaptive_windows(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's adaptive windows along one axis: each output's first and one-past-last input position."""
    starts = np.array([(i * size) // out for i in range(out)])
    ends = np.array([-((-(i + 1) * size) // out) for i in range(out)])
    return starts, ends


def _adaptive_max_indices(x: Any, outs: list[int]) -> Any:
    """PyTorch's ``adaptive_max_pool2d`` indices of ``x`` (``(..., H, W)``, static): the flat ``h * W + w`` of
    each window's first maximum (row-major), or of its last NaN where it holds one, as PyTorch's CPU kernel
    (``val > maxval || isnan(val)``).

    Every window's taps are gathered onto one axis (rows, then columns, each window padded to the widest by
    repeating its last row / column: a repeat comes after the position it repeats, so neither the first maximum
    nor the last NaN is told apart from it) and ``reduce_argmax`` picks the tap, on the reversed axis for the
    last NaN; the tap's offset in its window is clipped to the window, as the repeats were.
    """
    from coremltools.converters.mil.mil import Builder as mb

    lead = [int(d) for d in x.shape[:-2]]
    height, width = (int(d) for d in x.shape[-2:])
    (row0, row_end), (col0, col_end) = _adaptive_windows(height, outs[0]), _adaptive_windows(width, outs[1])
    kh, kw = int((row_end - row0).max()), int((col_end - col0).max())
    rows = np.minimum(row0[:, None] + np.arange(kh), row_end[:, None] - 1).ravel().astype(np.int32)
    cols = np.minimum(col0[:, None] + np.arange(kw), col_end[:, None] - 1).ravel().astype(np.int32)
    batch = int(np.prod(lead)) if lead else 1
    plane = mb.reshape(x=x, shape=[batch, height, width])  # Core ML's rank limit is 5: batch axes flattened
    taps = mb.gather(x=mb.gather(x=plane, indices=rows, axis=1), indices=cols, axis=2)
    taps = mb.reshape(x=taps, shape=[batch, outs[0], kh, outs[1], kw])
    taps = mb.reshape(x=mb.transpose(x=taps, perm=[0, 1, 3, 2, 4]), shape=[batch, outs[0], outs[1], kh * kw])
    tap = mb.reduce_argmax(x=taps, axis=-1, keep_dims=False)
    if types_is_float(x):
        last = mb.reduce_argmax(x=mb.reverse(x=taps, axes=[-1]), axis=-1, keep_dims=False)
        best = mb.reduce_max(x=taps, axes=[-1], keep_dims=False)
        tap = select(mb.not_equal(x=best, y=best), mb.sub(x=np.int32(kh * kw - 1), y=last), tap)
    row = mb.minimum(x=mb.floor_div(x=tap, y=np.int32(kw)), y=(row_end - row0 - 1)[:, None].astype(np.int32))
    col = mb.minimum(x=mb.mod(x=tap, y=np.int32(kw)), y=(col_end - col0 - 1)[None, :].astype(np.int32))
    base = (row0[:, None] * width + col0[None, :]).astype(np.int32)  # each window's first position
    flat = mb.add(x=mb.add(x=mb.mul(x=row, y=np.int32(width)), y=col), y=base)
    return mb.reshape(x=flat, shape=[*lead, *outs])


def types_is_float(x: Any) -> bool:
    from coremltools.converters.mil.mil import types

    return bool(types.is_float(x.dtype))


def _adaptive_max_with_indices(context: Any, node: Any, spatial: int) -> object:
    """coremltools' pooled values (its ``adaptive_max_pool{1,2}d`` translation) with PyTorch's indices beside them;
    static sizes. With flexible sizes, coremltools' translation as it is (no indices)."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    x = inputs[0]
    outs = [int(v) for v in np.atleast_1d(const_value(inputs[1]))]
    original = frontend().adaptive_max_pool2d if spatial == 2 else frontend().adaptive_max_pool1d
    original(context, node)
    if any_symbolic(x.shape[-spatial:]) or len(outs) != spatial:
        return DELEGATED
    values = _bound_values(context, node)
    if spatial == 1:  # one row: the flat index is the column
        plane = mb.expand_dims(x=x, axes=[-2])
        indices = mb.squeeze(x=_adaptive_max_indices(plane, [1, outs[0]]), axes=[-2])
    else:
        indices = _adaptive_max_indices(x, outs)
    _bind_with_indices(context, node, values, indices)
    return None


@rescue(
    "adaptive_max_pool2d",
    "override: coremltools 9.0 binds no indices for adaptive_max_pool2d(return_indices=True)",
    override=True,
)
def adaptive_max_pool2d(context: Any, node: Any) -> object:
    return _adaptive_max_with_indices(context, node, 2)


@rescue(
    "adaptive_max_pool1d",
    "override: coremltools 9.0 binds no indices for adaptive_max_pool1d(return_indices=True)",
    override=True,
)
def adaptive_max_pool1d(context: Any, node: Any) -> object:
    return _adaptive_max_with_indices(context, node, 1)
