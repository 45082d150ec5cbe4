"""Adaptive 3-D pooling (video and volumetric nets) and dilated max pooling, which coremltools 9.0 cannot
translate."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, frontend
from devicefit.convert.rescue._registry import DELEGATED, rescue
from devicefit.convert.rescue.pool_ceil import _per_axis, ceil_mode_pool

_SPATIAL = 3


def _adaptive_pool3d(context: Any, node: Any, kind: str) -> None:
    """``F.adaptive_{avg,max}_pool3d(x, output_size)`` on static spatial sizes.

    Evenly dividing sizes are one ``avg_pool`` / ``max_pool`` (kernel = stride = in / out, no padding: the
    windows PyTorch uses). Otherwise PyTorch's windows are ``[floor(i*n/o), ceil((i+1)*n/o))`` and may overlap;
    a mean or max over a box is the same taken one axis at a time, so each axis is pooled on its own: one
    slice and reduce per output index, concatenated.
    """
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.symbolic import is_symbolic

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    x = inputs[0]
    sizes = const_value(inputs[1])
    if sizes is None or isinstance(inputs[1], list):
        raise NotImplementedError(f"adaptive_{kind}_pool3d with an output size computed at run time")
    spatial = list(x.shape[-_SPATIAL:])
    if any(is_symbolic(d) for d in spatial):
        raise NotImplementedError(f"adaptive_{kind}_pool3d on flexible spatial sizes {spatial}")
    ins = [int(d) for d in spatial]
    outs = [int(o) if o is not None else n for o, n in zip(np.asarray(sizes, dtype=object).ravel(), ins)]
    if any(o <= 0 for o in outs):
        raise ValueError(f"adaptive_{kind}_pool3d output size {outs} must be positive")
    reduce = mb.reduce_mean if kind == "avg" else mb.reduce_max
    if all(n % o == 0 for n, o in zip(ins, outs)):
        kernel = [n // o for n, o in zip(ins, outs)]
        pool = mb.avg_pool if kind == "avg" else mb.max_pool
        extra = {"exclude_padding_from_average": True} if kind == "avg" else {}
        y = pool(x=x, kernel_sizes=kernel, strides=kernel, pad_type="valid", **extra)
    else:
        y = x
        for offset, (n, o) in enumerate(zip(ins, outs)):
            axis = x.rank - _SPATIAL + offset
            if n == o:
                continue
            parts = [
                reduce(
                    x=_slice(mb, y, axis, math.floor(i * n / o), math.ceil((i + 1) * n / o)),
                    axes=[axis],
                    keep_dims=True,
                )
                for i in range(o)
            ]
            y = parts[0] if len(parts) == 1 else mb.concat(values=parts, axis=axis)
    # NOTE: TorchScript's adaptive_max_pool3d also names an indices output; only the values are given (a
    # model reading the indices then fails to convert, naming this op)
    context.add(mb.identity(x=y, name=node.outputs[0]), torch_name=node.outputs[0])


def _slice(mb: Any, x: Any, axis: int, begin: int, end: int) -> Any:
    """``x[begin:end]`` along ``axis``, every other axis whole."""
    rank = x.rank
    begins, ends = [0] * rank, [0] * rank
    begins[axis], ends[axis] = begin, end
    mask = [True] * rank
    mask[axis] = False
    return mb.slice_by_index(x=x, begin=begins, end=ends, begin_mask=mask, end_mask=mask)


@rescue(
    "adaptive_avg_pool3d", "coremltools 9.0 has no translation (AdaptiveAvgPool3d heads of 3-D conv nets)"
)
def adaptive_avg_pool3d(context: Any, node: Any) -> None:
    _adaptive_pool3d(context, node, "avg")


@rescue("adaptive_max_pool3d", "coremltools 9.0 has no translation (AdaptiveMaxPool3d)")
def adaptive_max_pool3d(context: Any, node: Any) -> None:
    _adaptive_pool3d(context, node, "max")


def _plain_max_pool(
    x: Any, kernel: list[int], stride: list[int], padding: list[int], ceil: bool, name: str
) -> Any:
    """MIL ``max_pool`` as coremltools builds it (``-inf`` padding is implicit in MIL's max_pool)."""
    from coremltools.converters.mil.mil import Builder as mb

    if ceil and len(kernel) > 2:
        raise NotImplementedError("max_pool3d with ceil_mode and no stride given")
    pad = [p for p in padding for _ in range(2)]
    return mb.max_pool(
        x=x, kernel_sizes=kernel, strides=stride, pad_type="custom", pad=pad, ceil_mode=ceil, name=name
    )


def _dilated_max_pool(context: Any, node: Any) -> object:
    """``F.max_pool{1,2,3}d`` with ``dilation > 1``, which MIL ``max_pool`` cannot express, or on an unbatched
    input (``(C, H, W)``, which coremltools refuses); otherwise the node goes to coremltools' own translation
    (or, when torch.export leaves out the default stride, which coremltools requires, the same MIL ``max_pool``
    built here).

    The input is padded with ``-inf`` (PyTorch's implicit padding: it never wins a window, and every dilated
    window holds at least one input element), then each of the ``prod(kernel)`` taps is one strided slice and the
    result their ``maximum``. ``ceil_mode`` pads the far end enough for the extra window PyTorch allows (one that
    starts inside the input or the left padding). Static spatial sizes.
    """
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.symbolic import is_symbolic

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    x = inputs[0]
    kernel = [int(k) for k in np.asarray(const_value(inputs[1])).ravel()]
    count = len(kernel)
    stride = _per_axis(arg(context, node, inputs, 2, "stride"), count, kernel)
    padding = _per_axis(arg(context, node, inputs, 3, "padding"), count, [0] * count)
    dilation = _per_axis(arg(context, node, inputs, 4, "dilation"), count, [1] * count)
    ceil_mode = bool(const_value(arg(context, node, inputs, 5, "ceil_mode"), False))
    if all(d == 1 for d in dilation):
        if x.rank == count + 1:  # unbatched (C, H, W): MIL max_pool wants (N, C, spatial...), so one is added
            batched = mb.expand_dims(x=x, axes=[0])
            pooled = _plain_max_pool(batched, kernel, stride, padding, ceil_mode, node.name + "_batched")
            context.add(mb.squeeze(x=pooled, axes=[0], name=node.name), torch_name=node.name)
            return None
        if ceil_mode_pool(context, node, "max", count):  # a ceil-mode window PyTorch drops
            return None
        if len(inputs) < 3:  # torch.export omits a default stride, and coremltools wants it given
            context.add(
                _plain_max_pool(x, kernel, stride, padding, ceil_mode, node.name), torch_name=node.name
            )
            return None
        frontend().max_pool1d(context, node)  # coremltools' translation of all three ranks
        return DELEGATED
    spatial = list(x.shape[-count:])
    if any(is_symbolic(d) for d in spatial):
        raise NotImplementedError(f"max_pool with dilation {dilation} on flexible spatial sizes {spatial}")
    lengths, pads = [], []
    for size, k, s, p, d in zip((int(v) for v in spatial), kernel, stride, padding, dilation):
        span = d * (k - 1) + 1
        out = (size + 2 * p - span + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (out - 1) * s >= size + p:
            out -= 1
        if out <= 0:
            raise ValueError(f"max_pool: output size {out} from input {size}, kernel {k}, dilation {d}")
        lengths.append(out)
        pads += [p, max(p, (out - 1) * s + span - size - p)]
    lead = x.rank - count
    padded = mb.pad(x=x, pad=[0] * (2 * lead) + pads, mode="constant", constant_val=float("-inf"))
    best = None
    for taps in itertools.product(*(range(k) for k in kernel)):
        begin = [0] * lead + [t * d for t, d in zip(taps, dilation)]
        end = [0] * lead + [b + (n - 1) * s + 1 for b, n, s in zip(begin[lead:], lengths, stride)]
        mask = [True] * lead + [False] * count
        window = mb.slice_by_index(
            x=padded, begin=begin, end=end, stride=[1] * lead + stride, begin_mask=mask, end_mask=mask
        )
        best = window if best is None else mb.maximum(x=best, y=window)
    context.add(mb.identity(x=best, name=node.name), torch_name=node.name)
    return None


for _kind in ("max_pool1d", "max_pool2d", "max_pool3d"):
    rescue(
        _kind,
        f"override: coremltools refuses {_kind} with dilation > 1 (MIL max_pool has no dilation) or on an "
        "unbatched input and, with ceil_mode, keeps a last window PyTorch drops; every other use stays with "
        "coremltools",
        override=True,
    )(_dilated_max_pool)


@rescue(
    "avg_pool2d",
    "override: coremltools 9.0 refuses avg_pool2d(divisor_override=) and, with ceil_mode, keeps a last window "
    "PyTorch drops; otherwise coremltools' translation",
    override=True,
)
def avg_pool2d(context: Any, node: Any) -> object:
    """``F.avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)``.

    With ``divisor_override = d`` every window's sum is divided by ``d``. The input is padded with zeros for
    ``padding`` and, with ``ceil_mode``, for the last partial windows (PyTorch's output size: a window must
    start inside the input or its left padding), so every window is a full ``kh x kw`` box; its sum is the box
    mean (MIL ``avg_pool``, no padding) times ``kh kw``, divided by ``d``: within 2e-7 relative of PyTorch.
    """
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    divisor = const_value(arg(context, node, inputs, 6, "divisor_override"), None)
    if divisor is None:
        if ceil_mode_pool(context, node, "avg", 2):  # a ceil-mode window PyTorch drops
            return None
        frontend().avg_pool2d(context, node)
        return DELEGATED
    divisor = int(divisor)
    if divisor == 0:
        raise ValueError("avg_pool2d: divisor_override must not be 0")
    x = inputs[0]
    kernel = _per_axis(inputs[1], 2, [])
    stride = _per_axis(arg(context, node, inputs, 2, "stride"), 2, kernel) or kernel
    padding = _per_axis(arg(context, node, inputs, 3, "padding"), 2, [0, 0])
    ceil_mode = bool(const_value(arg(context, node, inputs, 4, "ceil_mode"), False))
    spatial = [d for d in x.shape[-2:]]
    if not all(isinstance(d, int | np.integer) for d in spatial):
        raise NotImplementedError("avg_pool2d(divisor_override=) on flexible spatial sizes")
    pads = []
    for size, k, s, p in zip(spatial, kernel, stride, padding):
        span = int(size) + 2 * p - k
        out = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (out - 1) * s >= int(size) + p:  # PyTorch: the last window must start inside
            out -= 1
        extra = max(0, (out - 1) * s + k - (int(size) + 2 * p))
        pads += [p, p + extra]
    if any(pads):
        x = mb.pad(x=x, pad=[0] * (2 * (x.rank - 2)) + pads, mode="constant", constant_val=0.0)
    mean = mb.avg_pool(x=x, kernel_sizes=kernel, strides=stride, pad_type="valid")
    scale = kernel[0] * kernel[1] / divisor
    out = (
        mb.mul(x=mean, y=float(scale), name=node.name) if scale != 1 else mb.identity(x=mean, name=node.name)
    )
    context.add(out, torch_name=node.name)
    return None
