"""Convolutions: conv and conv_transpose (1d/2d/3d)."""

from __future__ import annotations

import torch.nn.functional as F

from devicefit.interp.ops._util import ints_at_least
from devicefit.interp.registry import int_, ints, register, str_

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def same_pads(in_sizes, kernel, strides, dilations, lower: bool) -> list[tuple[int, int]]:
    """Per-axis (before, after) padding for ``pad_type="same"`` / ``"same_lower"``."""
    pads = []
    for size, k, s, d in zip(in_sizes, kernel, strides, dilations):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        small, big = total // 2, total - total // 2
        pads.append((big, small) if lower else (small, big))
    return pads


def _explicit_pads(x, weight_spatial, strides, dilations, pad_type, pad):
    n = len(weight_spatial)
    if pad_type == "valid":
        return [(0, 0)] * n
    if pad_type in ("same", "same_lower"):
        return same_pads(x.shape[2:], weight_spatial, strides, dilations, pad_type == "same_lower")
    if pad_type == "custom":
        pad = pad or [0] * (2 * n)
        return [(pad[2 * i], pad[2 * i + 1]) for i in range(n)]
    raise ValueError(f"conv: unknown pad_type {pad_type!r}")


def _conv_attrs(op: str) -> dict:
    return {
        "strides": ints_at_least(1, op, "strides"),
        "pad": ints_at_least(0, op, "pad"),
        "dilations": ints_at_least(1, op, "dilations"),
        "groups": int_,
        "pad_type": str_,
    }


@register("conv", attrs=_conv_attrs("conv"))
def conv(x, weight, bias=None, strides=None, pad_type="valid", pad=None, dilations=None, groups=1):
    n = weight.dim() - 2
    strides = strides or [1] * n
    dilations = dilations or [1] * n
    pads = _explicit_pads(x, weight.shape[2:], strides, dilations, pad_type, pad)
    if any(b != a for b, a in pads):
        flat = [p for pair in reversed(pads) for p in pair]
        x = F.pad(x, flat)
        padding = [0] * n
    else:
        padding = [b for b, _ in pads]
    return _CONV[n](x, weight, bias, stride=strides, padding=padding, dilation=dilations, groups=groups)


@register(
    "conv_transpose",
    attrs={**_conv_attrs("conv_transpose"), "output_shape": ints},
)
def conv_transpose(
    x,
    weight,
    bias=None,
    pad=None,
    output_shape=None,
    pad_type="valid",
    strides=None,
    dilations=None,
    groups=1,
):
    # MIL weight layout: [C_in, C_out / groups, *K] (same as torch's conv_transpose).
    n = weight.dim() - 2
    strides = strides or [1] * n
    dilations = dilations or [1] * n
    # The full ("valid") result is cut to size; bias is added afterwards so that any rows added to
    # reach output_shape hold the bias, as PyTorch's output_padding rows do.
    y = _CONV_T[n](x, weight, None, stride=strides, padding=0, dilation=dilations, groups=groups)
    spatial = list(y.shape[2:])
    # output_shape wins over the computed size (for "same", TF's rule: the surplus is split around it).
    wanted = list(output_shape[-n:]) if output_shape else None
    if pad_type == "custom" and pad:
        starts = [pad[2 * i] for i in range(n)]
        sizes = wanted or [full - pad[2 * i] - pad[2 * i + 1] for i, full in enumerate(spatial)]
    elif pad_type in ("same", "same_lower"):
        sizes = wanted or [s * st for s, st in zip(x.shape[2:], strides)]
        starts = []
        for full, want in zip(spatial, sizes):
            total = max(full - want, 0)
            starts.append(total - total // 2 if pad_type == "same_lower" else total // 2)
    else:
        starts, sizes = [0] * n, wanted or spatial
    index = [slice(None), slice(None)] + [slice(b, b + size) for b, size in zip(starts, sizes)]
    y = y[tuple(index)]
    short = [want - have for want, have in zip(sizes, y.shape[2:])]
    if any(short):
        y = F.pad(y, [p for d in reversed(short) for p in (0, max(d, 0))])
    if bias is not None:
        y = y + bias.reshape([1, -1] + [1] * n)
    return y
