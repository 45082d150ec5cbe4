"""Transposed convolutions with ``output_padding``, which coremltools 9.0 refuses or mistranslates.

coremltools maps ``output_padding`` onto a crop of the padding ("padding=0 and output_padding > 0 not
supported"; 3-D: "output_padding is supported only for ConvTranspose1D or ConvTranspose2D"; where the padding is
smaller than the output padding it pads the *input* instead). Found by the differential fuzzer.

PyTorch's output along each spatial axis is the full transposed convolution (no padding), extended by
``output_padding`` positions that no input reaches (they hold only the bias), then cut by ``padding`` on both
sides. devicefit builds exactly that: MIL ``conv_transpose`` with ``pad_type="valid"`` and no bias, a zero pad
of ``output_padding`` at each axis' end, a slice, then the bias. Exact data movement around coremltools' own op.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, frontend
from devicefit.convert.rescue._registry import DELEGATED, rescue


def _per_axis(value: Any, spatial: int, default: int) -> list[int]:
    raw = const_value(value, default)
    values = [int(v) for v in np.ravel(raw)]
    return values * spatial if len(values) == 1 else values


@rescue(
    "_convolution",
    "override: coremltools 9.0 refuses a transposed convolution with output_padding when the padding is 0 "
    "(1-D / 2-D) or in 3-D, and pads the input instead of the output when the padding is smaller than it; every "
    "other convolution stays with coremltools",
    override=True,
    aliases=("convolution", "conv_transpose1d", "conv_transpose2d.input", "conv_transpose3d.input"),
)
def convolution(context: Any, node: Any) -> object:
    """A transposed convolution with a nonzero ``output_padding``: the full ``conv_transpose``, padded by
    ``output_padding`` at each spatial axis' end, sliced by ``padding`` on both sides, plus the bias."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    kind = node.kind
    if kind in ("_convolution", "convolution") and len(inputs) > 8:
        transposed = bool(const_value(inputs[6], False))
        dilation_var, out_pad_var, groups_var = inputs[5], inputs[7], inputs[8]
    elif re.match(r"conv_transpose[123]d", kind):
        transposed = True
        out_pad_var = arg(context, node, inputs, 5, "output_padding")
        groups_var = arg(context, node, inputs, 6, "groups")
        dilation_var = arg(context, node, inputs, 7, "dilation")
    else:
        transposed = False
    x, weight = inputs[0], inputs[1]
    spatial = weight.rank - 2 if hasattr(weight, "rank") else 0
    out_pad = _per_axis(out_pad_var, spatial, 0) if transposed else []
    if not transposed or not any(out_pad) or spatial < 1:
        frontend()._convolution(context, node)
        return DELEGATED
    bias = arg(context, node, inputs, 2, "bias")
    stride = _per_axis(arg(context, node, inputs, 3, "stride"), spatial, 1)
    padding = _per_axis(arg(context, node, inputs, 4, "padding"), spatial, 0)
    dilation = _per_axis(dilation_var, spatial, 1)
    groups = int(const_value(groups_var, 1))
    x, weight = frontend().promote_input_dtypes([x, weight])
    full = mb.conv_transpose(
        x=x, weight=weight, pad_type="valid", strides=stride, dilations=dilation, groups=groups
    )
    lengths = [int(d) for d in full.shape[2:]]
    out = mb.pad(x=full, pad=[0, 0] * 2 + [v for p in out_pad for v in (0, p)], mode="constant")
    ends = [n + o - p for n, o, p in zip(lengths, out_pad, padding)]
    masks = [True, True] + [False] * spatial
    out = mb.slice_by_index(
        x=out, begin=[0, 0, *padding], end=[0, 0, *ends], begin_mask=masks, end_mask=masks
    )
    if bias is not None:
        out = mb.add(x=out, y=mb.reshape(x=bias, shape=[-1] + [1] * spatial))
    context.add(mb.identity(x=out, name=node.name), torch_name=node.name)
    return None
