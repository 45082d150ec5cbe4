"""Adaptive 3-D pooling (video and volumetric nets), which coremltools 9.0 cannot translate."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import const_value, frontend
from devicefit.convert.rescue._registry import rescue

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
