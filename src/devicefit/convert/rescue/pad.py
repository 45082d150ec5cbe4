"""Circular padding and negative pads (cropping), which coremltools 9.0 refuses (``mb.pad`` has neither)."""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, frontend
from devicefit.convert.rescue._registry import DELEGATED, rescue


@rescue(
    "pad",
    "coremltools 9.0 refuses mode='circular' (Conv2d(padding_mode='circular'), F.pad(mode='circular')) and "
    "negative pads (cropping: RWKV's ZeroPad2d((0, 0, 1, -1)) token shift)",
    override=True,
)
def pad(context: Any, node: Any) -> object:
    """``F.pad(x, pad, mode, value)``: circular mode built from slices and a concat, negative pads in constant
    mode as a crop then a pad; other modes by coremltools.

    Torch lists the pads from the last axis backwards, ``(left, right)`` per axis; circular padding wraps
    ``x[..., -left:]`` before and ``x[..., :right]`` after. Axes are padded one after the other, each on the
    result of the previous, which gives the corners torch gives. Negative slice starts keep it valid on
    flexible (symbolic) shapes.
    """
    from coremltools.converters.mil.mil import Builder as mb

    ops = frontend()
    inputs = ops._get_inputs(context, node, min_expected=2)
    mode = const_value(arg(context, node, inputs, 2, "mode"), "constant")
    sizes = None if isinstance(inputs[1], list) else const_value(inputs[1])
    if mode == "constant" and sizes is not None and min(int(p) for p in np.asarray(sizes).ravel()) < 0:
        value = const_value(arg(context, node, inputs, 3, "value"), 0.0)
        _crop_then_pad(mb, context, node, inputs[0], [int(p) for p in np.asarray(sizes).ravel()], value)
        return None
    if mode != "circular":
        ops.pad(context, node)  # coremltools' own translation
        return DELEGATED
    x = inputs[0]
    if sizes is None or isinstance(inputs[1], list):
        raise NotImplementedError("circular padding with pad sizes computed at run time has no Core ML op")
    pads = [int(p) for p in np.asarray(sizes).ravel()]
    if any(p < 0 for p in pads):
        raise NotImplementedError("circular padding with negative pads (cropping) is not supported")
    rank = x.rank
    for i in range(len(pads) // 2):
        axis = rank - 1 - i
        left, right = pads[2 * i], pads[2 * i + 1]
        size = x.shape[axis]
        if isinstance(size, int | np.integer) and max(left, right) > size:
            raise ValueError(f"circular padding of {max(left, right)} exceeds axis {axis}'s size {size}")
        parts = []
        if left:
            parts.append(_slice(mb, x, axis, rank, -left, None))
        parts.append(x)
        if right:
            parts.append(_slice(mb, x, axis, rank, 0, right))
        if len(parts) > 1:
            x = mb.concat(values=parts, axis=axis)
    context.add(mb.identity(x=x, name=node.name), torch_name=node.name)
    return None


def _crop_then_pad(mb: Any, context: Any, node: Any, x: Any, pads: list[int], value: Any) -> None:
    """Torch's pads, last axis first: the negative ones cut ``x`` (a slice), the positive ones pad the result.

    A crop that leaves nothing of an axis (``F.pad(x, (-1, 1))`` of a size-1 axis) leaves only padding: the
    result is the fill value everywhere (Core ML has no empty tensors, and the slice would keep the axis).
    """
    rank = x.rank
    filled = _all_padding(x, pads)
    if filled is not None:
        const = np.full(filled, value or 0.0, dtype=np.float32)
        out = _fill_like(mb, x, const)
        context.add(mb.identity(x=out, name=node.name), torch_name=node.name)
        return
    begin, end = [0] * rank, [0] * rank
    begin_mask, end_mask = [True] * rank, [True] * rank
    grow = [0] * (2 * rank)  # mb.pad's order: first axis first, (before, after) per axis
    for i in range(len(pads) // 2):
        axis, left, right = rank - 1 - i, pads[2 * i], pads[2 * i + 1]
        if left < 0:
            begin[axis], begin_mask[axis] = -left, False
        if right < 0:
            end[axis], end_mask[axis] = right, False
        grow[2 * axis], grow[2 * axis + 1] = max(left, 0), max(right, 0)
    if not all(begin_mask) or not all(end_mask):
        x = mb.slice_by_index(x=x, begin=begin, end=end, begin_mask=begin_mask, end_mask=end_mask)
    if any(grow):
        x = mb.pad(x=x, pad=np.array(grow, np.int32), mode="constant", constant_val=float(value or 0.0))
    context.add(mb.identity(x=x, name=node.name), torch_name=node.name)


def _all_padding(x: Any, pads: list[int]) -> tuple[int, ...] | None:
    """The output shape when a crop empties an axis of ``x`` (static sizes), else None."""
    shape = list(x.shape)
    if not all(isinstance(d, int | np.integer) for d in shape):
        return None
    emptied = False
    for i in range(len(pads) // 2):
        axis, left, right = len(shape) - 1 - i, pads[2 * i], pads[2 * i + 1]
        emptied = emptied or int(shape[axis]) + min(left, 0) + min(right, 0) <= 0
        shape[axis] = int(shape[axis]) + left + right
    return tuple(int(d) for d in shape) if emptied and min(shape) > 0 else None


def _fill_like(mb: Any, x: Any, const: np.ndarray) -> Any:
    """``const`` in ``x``'s dtype (an int tensor padded with a float value stays int, as in PyTorch)."""
    from coremltools.converters.mil.mil.types.type_mapping import nptype_from_builtin

    return mb.const(val=const.astype(nptype_from_builtin(x.dtype)))


def _slice(mb: Any, x: Any, axis: int, rank: int, begin: int, end: int | None) -> Any:
    """``x[begin:end]`` along ``axis`` (``end=None``: to the end), every other axis whole."""
    begins, ends = [0] * rank, [0] * rank
    begins[axis] = begin
    ends[axis] = 0 if end is None else end
    end_mask = [True] * rank
    end_mask[axis] = end is None
    begin_mask = [True] * rank
    begin_mask[axis] = False
    return mb.slice_by_index(x=x, begin=begins, end=ends, begin_mask=begin_mask, end_mask=end_mask)
