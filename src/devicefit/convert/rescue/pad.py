"""Circular padding, which coremltools 9.0 refuses (``mb.pad`` has no circular mode)."""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, frontend
from devicefit.convert.rescue._registry import DELEGATED, rescue


@rescue(
    "pad",
    "coremltools 9.0 refuses mode='circular' (Conv2d(padding_mode='circular'), F.pad(mode='circular'))",
    override=True,
)
def pad(context: Any, node: Any) -> object:
    """``F.pad(x, pad, mode, value)``: circular mode built from slices and a concat; other modes by coremltools.

    Torch lists the pads from the last axis backwards, ``(left, right)`` per axis; circular padding wraps
    ``x[..., -left:]`` before and ``x[..., :right]`` after. Axes are padded one after the other, each on the
    result of the previous, which gives the corners torch gives. Negative slice starts keep it valid on
    flexible (symbolic) shapes.
    """
    from coremltools.converters.mil.mil import Builder as mb

    ops = frontend()
    inputs = ops._get_inputs(context, node, min_expected=2)
    mode = const_value(arg(context, node, inputs, 2, "mode"), "constant")
    if mode != "circular":
        ops.pad(context, node)  # coremltools' own translation
        return DELEGATED
    x = inputs[0]
    sizes = const_value(inputs[1])
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
