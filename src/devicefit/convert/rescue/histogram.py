"""``torch.histc``, which coremltools 9.0 lacks, bit-exact against PyTorch's binning.

PyTorch bins a value ``v`` of ``[lo, hi]`` as ``int((v - lo) * bins / (hi - lo))`` in the input's float type
(the last bin also takes ``hi``). Computing that formula in MIL would not give PyTorch's bins at the edges:
coremltools rewrites the division by a constant as a product with its reciprocal, another rounding. The formula
is monotone in ``v``, so each bin starts at one float32 threshold, found at conversion time by a binary search
over the float32 values between ``lo`` and ``hi`` with PyTorch's own fp32 arithmetic (numpy float32); a value's
bin is then the number of thresholds at or below it, which Core ML compares exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, frontend, select
from devicefit.convert.rescue._registry import rescue


def _order_key(values: np.ndarray) -> np.ndarray:
    """float32 -> int64 keys in the floats' order (-0 and +0 share key 0)."""
    bits = values.astype(np.float32).view(np.uint32).astype(np.int64)
    return np.where(bits >> 31, -(bits & 0x7FFFFFFF), bits)


def _from_key(keys: np.ndarray) -> np.ndarray:
    bits = np.where(keys < 0, (-keys) | 0x80000000, keys).astype(np.uint32)
    return bits.view(np.float32)


def _torch_bin(values: np.ndarray, low: np.float32, high: np.float32, bins: int) -> np.ndarray:
    """PyTorch's ``(v - lo) * bins / (hi - lo)`` in float32, truncated (values are in ``[lo, hi]``)."""
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = (values - low) * np.float32(bins) / (high - low)
    return np.trunc(scaled).astype(np.int64)


def bin_thresholds(low: float, high: float, bins: int) -> np.ndarray:
    """The smallest float32 of each bin ``1 .. bins - 1`` under PyTorch's histc binning (ascending)."""
    low32, high32 = np.float32(low), np.float32(high)
    wanted = np.arange(1, bins, dtype=np.int64)
    below = np.full(wanted.shape, _order_key(np.array([low32]))[0])  # bin 0: never >= wanted
    above = np.full(wanted.shape, _order_key(np.array([high32]))[0])  # bin `bins`: always >= wanted
    while np.any(above - below > 1):
        middle = (below + above) // 2
        reached = _torch_bin(_from_key(middle), low32, high32, bins) >= wanted
        above = np.where(reached, middle, above)
        below = np.where(reached, below, middle)
    return _from_key(above)


@rescue("histc", "coremltools 9.0 has no translation (torch.histc: activation histograms, soft binning)")
def histc(context: Any, node: Any) -> None:
    """``torch.histc(x, bins=100, min=0, max=0)``: counts of the values in ``[min, max]`` (NaN and values outside
    are not counted) per bin, in ``x``'s dtype; exact in fp32. ``min == max`` takes the range from the data."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types
    from coremltools.converters.mil.mil.types.type_mapping import builtin_to_string

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    bins = int(const_value(arg(context, node, inputs, 1, "bins"), 100))
    low = float(const_value(arg(context, node, inputs, 2, "min"), 0.0))
    high = float(const_value(arg(context, node, inputs, 3, "max"), 0.0))
    if bins <= 0:
        raise ValueError(f"histc: bins must be positive (got {bins})")
    if low > high:
        raise ValueError(f"histc: max {high} must be larger than min {low}")
    if not types.is_float(x.dtype):
        raise NotImplementedError("histc of an integer tensor (PyTorch's CPU kernel has none either)")
    flat = mb.reshape(x=x, shape=[-1, 1])
    if low == high:
        lowest, highest, index = _binned_by_the_data(flat, bins)
    else:
        lowest, highest = np.float32(low), np.float32(high)
        if bins > 1:
            reached = mb.greater_equal(x=flat, y=bin_thresholds(low, high, bins)[None, :])  # (N, bins - 1)
            index = mb.reduce_sum(x=mb.cast(x=reached, dtype="int32"), axes=[1], keep_dims=True)  # (N, 1)
        else:
            index = np.zeros((1, 1), np.int32)
    # NaN compares false: not counted, as in PyTorch
    inside = mb.logical_and(x=mb.greater_equal(x=flat, y=lowest), y=mb.less_equal(x=flat, y=highest))
    member = mb.logical_and(x=mb.equal(x=index, y=np.arange(bins, dtype=np.int32)[None, :]), y=inside)
    counts = mb.reduce_sum(x=mb.cast(x=member, dtype="int32"), axes=[0], keep_dims=False)  # (bins,)
    context.add(mb.cast(x=counts, dtype=builtin_to_string(x.dtype), name=node.name), torch_name=node.name)


def _binned_by_the_data(flat: Any, bins: int) -> tuple[Any, Any, Any]:
    """``min == max``: PyTorch takes the range from the data (widened by 1 each way when it is one value). The
    range is then computed at run time, so the division is no constant coremltools could rewrite: PyTorch's
    fp32 formula itself, ``floor((v - lo) * bins / (hi - lo))``, the last bin taking ``hi``."""
    from coremltools.converters.mil.mil import Builder as mb

    lowest = mb.reduce_min(x=flat, axes=[0, 1], keep_dims=False)
    highest = mb.reduce_max(x=flat, axes=[0, 1], keep_dims=False)
    single = mb.equal(x=lowest, y=highest)
    lowest = select(cond=single, a=mb.sub(x=lowest, y=1.0), b=lowest)
    highest = select(cond=single, a=mb.add(x=highest, y=1.0), b=highest)
    scaled = mb.real_div(x=mb.mul(x=mb.sub(x=flat, y=lowest), y=float(bins)), y=mb.sub(x=highest, y=lowest))
    index = mb.minimum(x=mb.cast(x=mb.floor(x=scaled), dtype="int32"), y=np.int32(bins - 1))
    return lowest, highest, index


_BINCOUNT_HINT = (
    "torch.bincount without minlength has a data-dependent length (max(x) + 1), which a Core ML output cannot "
    "have: pass minlength=N with N above every value (torch.bincount(x, minlength=N)), or count with "
    "F.one_hot(x, N).sum(0)"
)


@rescue("bincount", "coremltools 9.0 has no translation (torch.bincount: class counts, histogram of labels)")
def bincount(context: Any, node: Any) -> None:
    """``torch.bincount(x, weights, minlength)`` with a constant ``minlength``, which is the output's length.

    The count of bin ``b`` is ``sum(x == b)`` (weighted: ``sum(where(x == b, w, 0))``) over a broadcast ``(N,
    minlength)`` comparison. NOTE: PyTorch lengthens the output to ``max(x) + 1`` when a value reaches
    ``minlength``; a Core ML output has a fixed length, so such values (and negative ones, which PyTorch rejects)
    are not counted: ``minlength`` must bound the values. Without ``minlength`` the length is data-dependent and
    the op is refused with a hint.
    """
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    weights = arg(context, node, inputs, 1, "weights")
    minlength = int(const_value(arg(context, node, inputs, 2, "minlength"), 0))
    if minlength <= 0:
        raise NotImplementedError(_BINCOUNT_HINT)
    if x.rank != 1:
        raise ValueError(f"torch.bincount needs a 1-D input, got shape {x.shape}")
    if not types.is_int(x.dtype):
        x = mb.cast(x=x, dtype="int32")
    hits = mb.equal(x=mb.expand_dims(x=x, axes=[1]), y=np.arange(minlength, dtype=np.int32)[None, :])
    if weights is None:
        counts = mb.reduce_sum(x=mb.cast(x=hits, dtype="int32"), axes=[0], keep_dims=False, name=node.name)
    else:
        if not types.is_float(weights.dtype):
            weights = mb.cast(x=weights, dtype="fp32")
        picked = select(cond=hits, a=mb.expand_dims(x=weights, axes=[1]), b=np.float32(0.0))
        counts = mb.reduce_sum(x=picked, axes=[0], keep_dims=False, name=node.name)
    context.add(counts, torch_name=node.name)
