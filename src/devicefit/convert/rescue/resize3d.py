"""``upsample_trilinear3d`` and ``upsample_nearest3d`` (3-D U-Nets: ``F.interpolate`` of 5-D tensors), which
coremltools 9.0 lacks."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, frontend
from devicefit.convert.rescue._registry import rescue
from devicefit.convert.rescue.resize import _numbers


def linear_matrix(size_in: int, size_out: int, align_corners: bool, scale: float | None) -> np.ndarray:
    """The (size_out, size_in) matrix of PyTorch's 1-D linear resize, from its response to basis vectors.

    Trilinear resizing is separable: each axis maps exactly as ``upsample_linear1d`` does with that axis's scale.
    """
    import torch

    basis = torch.eye(size_in, dtype=torch.float64).reshape(size_in, 1, size_in)
    response = torch.ops.aten.upsample_linear1d.default(basis, [size_out], align_corners, scale)
    return response.reshape(size_in, size_out).T.numpy()


@rescue(
    "upsample_trilinear3d",
    "coremltools 9.0 has no translation (F.interpolate(mode='trilinear') in 3-D U-Nets)",
    aliases=("upsample_trilinear3d.vec",),
)
def upsample_trilinear3d(context: Any, node: Any) -> None:
    """``F.interpolate(x, mode="trilinear")`` on static sizes: one matmul per axis with PyTorch's weights.

    Overloads: ``(x, output_size, align_corners, scales_d, scales_h, scales_w)`` and ``.vec``
    ``(x, output_size | None, align_corners, scale_factors | None)``.
    """
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic
    from coremltools.converters.mil.mil.types.type_mapping import nptype_from_builtin

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    if x.rank != 5 or any_symbolic(x.shape[-3:]):
        raise NotImplementedError(
            "trilinear resizing needs a rank-5 input with static depth, height and width"
        )
    size_in = [int(d) for d in x.shape[-3:]]
    output_size = _numbers(arg(context, node, inputs, 1, "output_size"))
    align_corners = bool(const_value(arg(context, node, inputs, 2, "align_corners"), False))
    if len(inputs) == 6:  # the default overload: per-axis scales
        scales: list = [const_value(v) for v in inputs[3:6]]
    else:
        factors = _numbers(arg(context, node, inputs, 3, "scale_factors"))
        scales = [None] * 3 if factors is None else [float(f) for f in factors]
    if output_size is None:
        if scales[0] is None:
            raise NotImplementedError("trilinear resizing needs a constant output size or scale factors")
        output_size = [math.floor(s * f) for s, f in zip(size_in, scales, strict=True)]
    dtype = nptype_from_builtin(x.dtype)
    d, h, w = (
        linear_matrix(n, int(o), align_corners, s).astype(dtype)
        for n, o, s in zip(size_in, output_size, scales, strict=True)
    )
    y = mb.matmul(x=x, y=np.ascontiguousarray(w.T))  # (N, C, D, H, W_out)
    y = mb.matmul(x=h, y=y)  # (N, C, D, H_out, W_out)
    y = mb.transpose(x=y, perm=[0, 1, 3, 4, 2])
    y = mb.matmul(x=y, y=np.ascontiguousarray(d.T))  # (N, C, H_out, W_out, D_out)
    context.add(mb.transpose(x=y, perm=[0, 1, 4, 2, 3], name=node.name), torch_name=node.name)


def nearest_rows(size_in: int, size_out: int, scale: float | None) -> np.ndarray:
    """The input position PyTorch's ``upsample_nearest1d`` copies to each output position (its own kernel run on
    the positions themselves, so its rounding of ``dst * in / out`` or ``dst / scale`` is reproduced)."""
    import torch

    positions = torch.arange(size_in, dtype=torch.float64).reshape(1, 1, size_in)
    picked = torch.ops.aten.upsample_nearest1d.default(positions, [size_out], scale)
    return picked.reshape(size_out).numpy().astype(np.int32)


@rescue(
    "upsample_nearest3d",
    "coremltools 9.0 has no translation (F.interpolate(mode='nearest') of a 5-D tensor: 3-D U-Nets, video)",
    aliases=("upsample_nearest3d.vec",),
)
def upsample_nearest3d(context: Any, node: Any) -> None:
    """``F.interpolate(x, mode="nearest")`` on a rank-5 input of static spatial sizes: one gather per axis of the
    positions PyTorch's kernel picks (exact: inf, NaN and -0 are copied).

    Overloads: ``(x, output_size, scales_d, scales_h, scales_w)`` and ``.vec`` ``(x, output_size | None,
    scale_factors | None)``.
    """
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    if x.rank != 5 or any_symbolic(x.shape[-3:]):
        raise NotImplementedError(
            "nearest 3-D resizing needs a rank-5 input with static depth, height and width"
        )
    size_in = [int(d) for d in x.shape[-3:]]
    output_size = _numbers(arg(context, node, inputs, 1, "output_size"))
    if len(inputs) == 5:  # the default overload: per-axis scales
        scales: list = [const_value(v) for v in inputs[2:5]]
    else:
        factors = _numbers(arg(context, node, inputs, 2, "scale_factors"))
        scales = [None] * 3 if factors is None else [float(f) for f in factors]
    if output_size is None:
        if scales[0] is None:
            raise NotImplementedError("nearest 3-D resizing needs a constant output size or scale factors")
        output_size = [math.floor(s * f) for s, f in zip(size_in, scales, strict=True)]
    y = x
    for axis, (n, o, s) in enumerate(zip(size_in, output_size, scales, strict=True)):
        if n != int(o) or s not in (None, 1.0):
            y = mb.gather(x=y, indices=nearest_rows(n, int(o), s), axis=2 + axis)
    context.add(mb.identity(x=y, name=node.name), torch_name=node.name)
