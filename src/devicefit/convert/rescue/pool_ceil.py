"""1-D / 2-D / 3-D max and average pooling with ``ceil_mode=True`` where PyTorch drops the last window.

coremltools 9.0 hands ``ceil_mode`` straight to MIL's ``max_pool`` / ``avg_pool``, whose output size is
``ceil((n + 2p - k) / s) + 1``. PyTorch applies one more rule: the last window must start inside the input or
its left padding, else it is dropped. Where that rule fires (``max_pool1d`` of 4 values, kernel 1, stride 2:
PyTorch 2 outputs, the package 3, the third a window of padding only) the converted model has the wrong shape
and a ``-inf`` / ``0`` value. Found by the differential fuzzer (tests/interp/difffuzz.py). Only those nodes are
built here, with PyTorch's output size and explicit padding (MIL ``ceil_mode=False``); every other pooling node
stays with coremltools.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, frontend
from devicefit.convert.rescue._registry import DELEGATED, rescue


def torch_pool_sizes(
    spatial: list[int], kernel: list[int], stride: list[int], padding: list[int]
) -> list[int]:
    """PyTorch's ceil-mode output size per axis (the last window starts inside the input or its left padding)."""
    sizes = []
    for n, k, s, p in zip(spatial, kernel, stride, padding):
        out = -(-(n + 2 * p - k) // s) + 1
        if (out - 1) * s >= n + p:
            out -= 1
        sizes.append(out)
    return sizes


def _drops_a_window(spatial: list[int], kernel: list[int], stride: list[int], padding: list[int]) -> bool:
    mil = [-(-(n + 2 * p - k) // s) + 1 for n, k, s, p in zip(spatial, kernel, stride, padding)]
    return mil != torch_pool_sizes(spatial, kernel, stride, padding)


def _static_spatial(x: Any, count: int) -> list[int] | None:
    dims = list(x.shape[-count:])
    return [int(d) for d in dims] if all(isinstance(d, int | np.integer) for d in dims) else None


def _per_axis(value: Any, count: int, default: list[int]) -> list[int]:
    """A pooling argument (kernel, stride, padding, dilation) per spatial axis; ``default`` when not given."""
    found = const_value(value, None)
    if found is None:
        return default
    found = [int(v) for v in np.asarray(found).ravel()]
    if not found:
        return default
    return found * count if len(found) == 1 else found


def ceil_mode_pool(context: Any, node: Any, kind: str, count: int) -> bool:
    """Build ``node`` (``max_pool{count}d`` / ``avg_pool{count}d``, ``ceil_mode=True``) when PyTorch drops a
    window MIL's ceil mode keeps; False (nothing built) for every other node.

    The far end is padded just enough for PyTorch's last window, so MIL's floor mode gives PyTorch's size.
    ``count_include_pad=True`` counts ``padding`` but never the far-end overflow in the divisor (PyTorch clips
    each window to the padded input): the ``padding`` zeros are added explicitly and the overflow is MIL padding
    excluded from the average.
    """
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    x = inputs[0]
    ceil_at = 5 if kind == "max" else 4
    if not bool(const_value(arg(context, node, inputs, ceil_at, "ceil_mode"), False)):
        return False
    spatial = _static_spatial(x, count)
    kernel = _per_axis(inputs[1], count, [])
    stride = _per_axis(arg(context, node, inputs, 2, "stride"), count, kernel) or kernel
    padding = _per_axis(arg(context, node, inputs, 3, "padding"), count, [0] * count)
    if kind == "max" and any(
        d != 1 for d in _per_axis(arg(context, node, inputs, 4, "dilation"), count, [1])
    ):
        return False
    if spatial is None or not kernel or not _drops_a_window(spatial, kernel, stride, padding):
        return False
    sizes = torch_pool_sizes(spatial, kernel, stride, padding)
    include_pad = kind == "avg" and bool(
        const_value(arg(context, node, inputs, 5, "count_include_pad"), True)
    )
    pad: list[int] = []
    for n, k, s, p, out in zip(spatial, kernel, stride, padding, sizes):
        if include_pad:  # x is padded by p on both sides first; MIL pads only the overflow
            pad += [0, max(0, (out - 1) * s + k - (n + 2 * p))]
        else:
            pad += [p, max(p, (out - 1) * s + k - (n + p))]
    if include_pad and any(padding):
        lead = x.rank - count
        x = mb.pad(
            x=x,
            pad=[0] * (2 * lead) + [q for p in padding for q in (p, p)],
            mode="constant",
            constant_val=0.0,
        )
    common = {"x": x, "kernel_sizes": kernel, "strides": stride, "pad_type": "custom", "pad": pad}
    if kind == "max":
        out_var = mb.max_pool(**common, ceil_mode=False, name=node.name)
    else:
        out_var = mb.avg_pool(**common, exclude_padding_from_average=True, ceil_mode=False, name=node.name)
    context.add(out_var, torch_name=node.name)
    return True


@rescue(
    "avg_pool1d",
    "override: with ceil_mode, coremltools 9.0 keeps a last window PyTorch drops (wrong output size); "
    "every other use stays with coremltools",
    override=True,
)
def avg_pool1d(context: Any, node: Any) -> object:
    """``F.avg_pool1d`` whose ceil mode drops a window (see :func:`ceil_mode_pool`); else coremltools'."""
    if ceil_mode_pool(context, node, "avg", 1):
        return None
    frontend().avg_pool1d(context, node)
    return DELEGATED


@rescue(
    "avg_pool3d",
    "override: with ceil_mode, coremltools 9.0 pads the far end for the 3-D ceil window without PyTorch's rule "
    "that drops a last window starting past the input (wrong output size); every other use stays with coremltools",
    override=True,
)
def avg_pool3d(context: Any, node: Any) -> object:
    """``F.avg_pool3d`` whose ceil mode drops a window (see :func:`ceil_mode_pool`); else coremltools'."""
    if ceil_mode_pool(context, node, "avg", 3):
        return None
    frontend().avg_pool3d(context, node)
    return DELEGATED
