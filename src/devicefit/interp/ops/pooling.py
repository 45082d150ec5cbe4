"""Pooling: avg_pool, max_pool, l2_pool over 1, 2 or 3 spatial axes.

Every pool is computed the same naive way: pad the input explicitly, cut it into windows with
``Tensor.unfold`` and reduce each window. Output sizes follow coremltools' ``spatial_dimensions_out_shape``
(including its ceil_mode rule), so the shapes always match what the model declares.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from devicefit.interp.ops._util import ints_at_least
from devicefit.interp.ops.conv import same_pads
from devicefit.interp.registry import bool_, register, str_

_POOL: dict[str, Callable[[Any], Any]] = {
    "kernel_sizes": ints_at_least(1, "pool", "kernel_sizes"),
    "strides": ints_at_least(1, "pool", "strides"),
    "pad": ints_at_least(0, "pool", "pad"),
    "pad_type": str_,
    "ceil_mode": bool_,
}


def _pads(x, kernel, strides, pad_type, pad) -> list[tuple[int, int]]:
    n = len(kernel)
    pad_type = pad_type.lower()
    if pad_type == "valid":
        return [(0, 0)] * n
    if pad_type in ("same", "same_lower"):
        return same_pads(x.shape[2:], kernel, strides, [1] * n, pad_type == "same_lower")
    if pad_type == "custom":
        pad = pad or [0] * (2 * n)
        return [(pad[2 * i], pad[2 * i + 1]) for i in range(n)]
    raise ValueError(f"pool: unknown pad_type {pad_type!r}")


def _out_size(size: int, k: int, s: int, before: int, after: int, ceil_mode: bool) -> int:
    total = before + after
    if not ceil_mode:
        return (size + total - k) // s + 1
    out = (size + total - k + s - 1) // s + 1
    # coremltools (like PyTorch) drops a last window that would start inside the right padding only.
    if (out - 1) * s >= size + total / 2 and total > 0:
        out -= 1
    return out


def _geometry(x, kernel_sizes, strides, pad_type, pad, ceil_mode):
    """(explicit pads, extra right padding that ceil_mode windows reach into, output sizes)."""
    strides = strides or [1] * len(kernel_sizes)
    pads = _pads(x, kernel_sizes, strides, pad_type, pad)
    outs, extra = [], []
    for size, k, s, (b, a) in zip(x.shape[2:], kernel_sizes, strides, pads):
        out = _out_size(size, k, s, b, a, ceil_mode)
        outs.append(out)
        extra.append(max(0, (out - 1) * s + k - (size + b + a)))
    return pads, extra, strides, outs


def _pad(x, pads, fill):
    flat = [p for pair in reversed(pads) for p in pair]
    return F.pad(x, flat, value=fill) if any(flat) else x


def _windows(x, kernel, strides, out_sizes):
    """[N, C, *out, *kernel] view of every pooling window."""
    for d, (k, s) in enumerate(zip(kernel, strides)):
        x = x.unfold(2 + d, k, s)
    # Padding past the last window (floor mode) yields no extra windows, but slice to be exact.
    return x[(slice(None), slice(None), *(slice(0, o) for o in out_sizes))]


def _window_sum(x, kernel, strides, out_sizes):
    n = len(kernel)
    return _windows(x, kernel, strides, out_sizes).sum(dim=tuple(range(-n, 0)))


@register("avg_pool", attrs={**_POOL, "exclude_padding_from_average": bool_})
def avg_pool(
    x,
    kernel_sizes,
    pad_type="valid",
    strides=None,
    pad=None,
    ceil_mode=False,
    exclude_padding_from_average=False,
):
    pads, extra, strides, outs = _geometry(x, kernel_sizes, strides, pad_type, pad, ceil_mode)
    full = [(b, a + e) for (b, a), e in zip(pads, extra)]
    sums = _window_sum(_pad(x, full, 0.0), kernel_sizes, strides, outs)
    # The divisor counts real elements, plus explicit padding unless excluded; never the area that
    # ceil_mode windows reach past the padding (PyTorch's count_include_pad rule).
    ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype)
    if exclude_padding_from_average:
        counted = _pad(ones, full, 0.0)
    else:
        counted = _pad(_pad(ones, pads, 1.0), [(0, e) for e in extra], 0.0)
    return sums / _window_sum(counted, kernel_sizes, strides, outs)


@register("max_pool", attrs=_POOL)
def max_pool(x, kernel_sizes, pad_type="valid", strides=None, pad=None, ceil_mode=False):
    pads, extra, strides, outs = _geometry(x, kernel_sizes, strides, pad_type, pad, ceil_mode)
    full = [(b, a + e) for (b, a), e in zip(pads, extra)]
    n = len(kernel_sizes)
    win = _windows(_pad(x, full, -math.inf), kernel_sizes, strides, outs)
    return win.amax(dim=tuple(range(-n, 0)))


@register("l2_pool", attrs=_POOL)
def l2_pool(x, kernel_sizes, pad_type="valid", strides=None, pad=None, ceil_mode=False):
    pads, extra, strides, outs = _geometry(x, kernel_sizes, strides, pad_type, pad, ceil_mode)
    full = [(b, a + e) for (b, a), e in zip(pads, extra)]
    return torch.sqrt(_window_sum(_pad(x * x, full, 0.0), kernel_sizes, strides, outs))
