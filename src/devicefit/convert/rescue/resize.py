"""Separable resizes as two matmuls with constant weights: ``W_h @ x @ W_w^T``.

Bicubic (``upsample_bicubic2d``) computes its weights here from PyTorch's formula; the antialiased
bilinear / bicubic modes take theirs from PyTorch's own kernel applied to basis vectors (these kernels are
separable, so that is exact). Nearest modes are gathers of the rows and columns that kernel picks (a product
with one-hot weights would turn an inf into NaNs across its row and column).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, frontend
from devicefit.convert.rescue._registry import DELEGATED, rescue

_A = -0.75  # PyTorch's cubic convolution coefficient (aten/src/ATen/native/UpSample.h)


def _cubic_near(x: np.ndarray) -> np.ndarray:  # |x| <= 1
    return ((_A + 2) * x - (_A + 3)) * x * x + 1


def _cubic_far(x: np.ndarray) -> np.ndarray:  # 1 < |x| < 2
    return ((_A * x - 5 * _A) * x + 8 * _A) * x - 4 * _A


def bicubic_matrix(size_in: int, size_out: int, align_corners: bool, scale: float | None) -> np.ndarray:
    """The (size_out, size_in) matrix of PyTorch's 1-D bicubic interpolation (border-clamped taps).

    ``scale`` is the user's scale factor (``out / in``) when one was given: PyTorch then maps with
    ``1 / scale`` rather than ``in / out`` (they differ when the output size was rounded).
    """
    if align_corners:
        step = (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
        src = step * np.arange(size_out, dtype=np.float64)
    else:
        step = 1.0 / scale if scale else size_in / size_out
        src = step * (np.arange(size_out, dtype=np.float64) + 0.5) - 0.5  # cubic: no clamp at 0
    base = np.floor(src)
    t = src - base
    weights = np.stack([_cubic_far(t + 1), _cubic_near(t), _cubic_near(1 - t), _cubic_far(2 - t)], axis=1)
    matrix = np.zeros((size_out, size_in), dtype=np.float64)
    for k in range(4):
        taps = np.clip(base.astype(np.int64) - 1 + k, 0, size_in - 1)
        np.add.at(matrix, (np.arange(size_out), taps), weights[:, k])
    return matrix


@rescue(
    "upsample_bicubic2d",
    "coremltools 9.0 has no translation; YOLOS and ViT-style models interpolate position embeddings with it",
    aliases=("upsample_bicubic2d.vec",),
)
def upsample_bicubic2d(context: Any, node: Any) -> None:
    """``F.interpolate(mode="bicubic")`` on static spatial sizes: ``W_h @ x @ W_w^T``.

    Overloads: ``(x, output_size, align_corners, scales_h, scales_w)`` and the ``.vec`` one
    ``(x, output_size | None, align_corners, scale_factors | None)``.
    """
    x, size_in, size_out, align_corners, scales = _resize_args(context, node, has_align=True)

    def matrix(axis: int) -> np.ndarray:
        return bicubic_matrix(size_in[axis], size_out[axis], align_corners, scales[axis])

    _apply(context, node, x, matrix(0), matrix(1))


_TORCH_KERNELS = {
    # sanitized op kind -> (aten kernel name, takes align_corners)
    "_upsample_bilinear2d_aa": ("_upsample_bilinear2d_aa", True),
    "_upsample_bicubic2d_aa": ("_upsample_bicubic2d_aa", True),
    "_upsample_nearest_exact2d": ("_upsample_nearest_exact2d", False),
    "upsample_bilinear2d": ("upsample_bilinear2d", True),
    "upsample_nearest2d": ("upsample_nearest2d", False),
}


@rescue(
    "_upsample_bilinear2d_aa",
    "coremltools 9.0 maps antialiased bilinear to plain bilinear: wrong values when downsampling, no error",
    override=True,
    aliases=("_upsample_bilinear2d_aa.vec",),
)
def upsample_bilinear2d_aa(context: Any, node: Any) -> None:
    """``F.interpolate(mode="bilinear", antialias=True)`` (torchvision's Resize default) on static sizes."""
    _torch_kernel_resize(context, node, "_upsample_bilinear2d_aa")


@rescue(
    "_upsample_bicubic2d_aa",
    "coremltools 9.0 has no translation for antialiased bicubic",
    aliases=("_upsample_bicubic2d_aa.vec",),
)
def upsample_bicubic2d_aa(context: Any, node: Any) -> None:
    """``F.interpolate(mode="bicubic", antialias=True)`` on static sizes."""
    _torch_kernel_resize(context, node, "_upsample_bicubic2d_aa")


@rescue(
    "_upsample_nearest_exact2d",
    "coremltools 9.0 has no translation for nearest-exact resizing",
    aliases=("_upsample_nearest_exact2d.vec",),
)
def upsample_nearest_exact2d(context: Any, node: Any) -> None:
    """``F.interpolate(mode="nearest-exact")`` on static sizes: gathers of the rows and columns PyTorch picks.

    NOTE: not a product with the one-hot matrices: ``0 * inf`` made NaN of every output sharing a row or column
    with an inf, and a sum of zeros lost -0.0 (found by the differential fuzzer, tests/interp/difffuzz.py).
    """
    _nearest_gathers(context, node, "_upsample_nearest_exact2d")


@rescue(
    "upsample_bilinear2d",
    "coremltools 9.0 refuses a non-integer scale_factor without recompute_scale_factor (align_corners=False)",
    override=True,
    aliases=("upsample_bilinear2d.vec",),
)
def upsample_bilinear2d(context: Any, node: Any) -> object:
    """``F.interpolate(mode="bilinear", scale_factor=s)`` with a non-integer ``s``: PyTorch's weights as matmuls.

    PyTorch then maps ``src = (dst + 0.5) / s - 0.5`` with the given ``s``, which differs from the ``in / out``
    of Core ML's upsample ops whenever ``in * s`` is not a whole number; other cases go to coremltools.
    """
    from coremltools.converters.mil.frontend.torch import ops

    if not _fractional_scale(context, node, has_align=True):
        ops.upsample_bilinear2d(context, node)
        return DELEGATED
    _torch_kernel_resize(context, node, "upsample_bilinear2d")
    return None


@rescue(
    "upsample_nearest2d",
    "coremltools 9.0 maps a non-integer scale_factor to Core ML's in/out spacing: wrong pixels, no error",
    override=True,
    aliases=("upsample_nearest2d.vec",),
)
def upsample_nearest2d(context: Any, node: Any) -> object:
    """``F.interpolate(mode="nearest", scale_factor=s)`` with a non-integer ``s``: gathers of PyTorch's rows.

    PyTorch picks ``floor(dst / s)`` with the given ``s``; Core ML's ``floor(dst * in / out)`` picks other
    rows when ``in * s`` is not a whole number. Integer scales and explicit sizes go to coremltools.
    """
    from coremltools.converters.mil.frontend.torch import ops

    if not _fractional_scale(context, node, has_align=False):
        ops.upsample_nearest2d(context, node)
        return DELEGATED
    _nearest_gathers(context, node, "upsample_nearest2d")
    return None


def _nearest_gathers(context: Any, node: Any, kernel: str) -> None:
    """A nearest-neighbour resize as two gathers of the source rows / columns PyTorch's ``kernel`` picks."""
    from coremltools.converters.mil.mil import Builder as mb

    x, size_in, size_out, _, scales = _resize_args(context, node, has_align=False)

    def rows(axis: int) -> np.ndarray:
        # each row of a nearest matrix holds a single 1: its column is the source index
        picked = torch_kernel_matrix(kernel, size_in[axis], size_out[axis], False, scales[axis])
        return picked.argmax(axis=1).astype(np.int32)

    wide = mb.gather(x=x, indices=rows(1), axis=3)
    context.add(mb.gather(x=wide, indices=rows(0), axis=2, name=node.name), torch_name=node.name)


def _fractional_scale(context: Any, node: Any, has_align: bool) -> bool:
    """Whether the node resizes by a user scale factor that is not a whole number (and maps with it)."""
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic

    x = frontend()._get_inputs(context, node, min_expected=1)[0]
    if x.rank != 4 or any_symbolic(x.shape[-2:]):
        return False  # coremltools' own translation handles (or refuses) flexible shapes
    try:
        _, _, _, align_corners, scales = _resize_args(context, node, has_align)
    except NotImplementedError:
        return False  # sizes computed at run time: coremltools' own translation

    # align_corners maps with (in - 1) / (out - 1) whatever the scale, as Core ML does
    return not align_corners and any(s is not None and float(s) != int(s) for s in scales)


def torch_kernel_matrix(
    kernel: str, size_in: int, size_out: int, align_corners: bool, scale: float | None
) -> np.ndarray:
    """The (size_out, size_in) matrix of a separable aten resize kernel, from its response to basis vectors."""
    import torch

    fn = getattr(torch.ops.aten, kernel).default
    basis = torch.eye(size_in, dtype=torch.float64).reshape(size_in, 1, 1, size_in)
    if _TORCH_KERNELS[kernel][1]:
        response = fn(basis, [1, size_out], align_corners, None, scale)
    else:
        response = fn(basis, [1, size_out], None, scale)
    return response.reshape(size_in, size_out).T.numpy()


def torch_kernel_matrices(
    kernel: str, size_in: list[int], size_out: list[int], align_corners: bool, scales: list
) -> tuple[np.ndarray, np.ndarray]:
    """The (rows, cols) matrices of a separable 2-D aten resize kernel, ``out = rows @ x @ cols.T``: its response
    to inputs constant along the other axis, in the node's own sizes.

    NOTE: not each axis alone (the other axis 1 -> 1): PyTorch's antialiased CPU kernels give every output row
    the first row's weights when the output width is 1, so only the response in the node's sizes is PyTorch's
    (the differential fuzzer, tests/interp/difffuzz.py, seed 99).
    """
    import torch

    fn = getattr(torch.ops.aten, kernel).default
    (h_in, w_in), (h_out, w_out) = size_in, size_out

    def response(basis: torch.Tensor) -> torch.Tensor:
        if _TORCH_KERNELS[kernel][1]:
            return fn(basis, [h_out, w_out], align_corners, scales[0], scales[1])
        return fn(basis, [h_out, w_out], scales[0], scales[1])

    rows = torch.eye(h_in, dtype=torch.float64).reshape(h_in, 1, h_in, 1).expand(h_in, 1, h_in, w_in)
    cols = torch.eye(w_in, dtype=torch.float64).reshape(w_in, 1, 1, w_in).expand(w_in, 1, h_in, w_in)
    return (
        response(rows.contiguous())[:, 0, :, 0].T.numpy(),
        response(cols.contiguous())[:, 0, 0, :].T.numpy(),
    )


def _torch_kernel_resize(context: Any, node: Any, kernel: str) -> None:
    has_align = _TORCH_KERNELS[kernel][1]
    x, size_in, size_out, align_corners, scales = _resize_args(context, node, has_align)
    _apply(context, node, x, *torch_kernel_matrices(kernel, size_in, size_out, align_corners, scales))


def _resize_args(context: Any, node: Any, has_align: bool) -> tuple[Any, list[int], list[int], bool, list]:
    """(x, input H W, output H W, align_corners, per-axis scales) for both overloads of a 2-D resize op.

    Overloads: ``(x, output_size, [align_corners,] scales_h, scales_w)`` and the ``.vec`` one
    ``(x, output_size | None, [align_corners,] scale_factors | None)``.
    """
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    if x.rank != 4 or any_symbolic(x.shape[-2:]):
        raise NotImplementedError(f"{node.kind} needs a rank-4 input with static height and width")
    size_in = [int(d) for d in x.shape[-2:]]
    output_size = _numbers(arg(context, node, inputs, 1, "output_size"))
    align_corners = (
        bool(const_value(arg(context, node, inputs, 2, "align_corners"), False)) if has_align else False
    )
    first_scale = 3 if has_align else 2
    if len(inputs) == first_scale + 2:  # the default overload: per-axis scales
        scales: list = [const_value(inputs[first_scale]), const_value(inputs[first_scale + 1])]
    else:
        factors = _numbers(arg(context, node, inputs, first_scale, "scale_factors"))
        scales = [None, None] if factors is None else [float(f) for f in factors]
    if output_size is None:
        if scales[0] is None:
            raise NotImplementedError(f"{node.kind} needs a constant output size or scale factors")
        output_size = [math.floor(s * f) for s, f in zip(size_in, scales, strict=True)]
    return x, size_in, [int(d) for d in output_size], align_corners, scales


def _apply(context: Any, node: Any, x: Any, rows: np.ndarray, cols: np.ndarray) -> None:
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.type_mapping import nptype_from_builtin

    dtype = nptype_from_builtin(x.dtype)
    wide = mb.matmul(x=x, y=np.ascontiguousarray(cols.T.astype(dtype)))  # (N, C, H, W_out)
    context.add(mb.matmul(x=rows.astype(dtype), y=wide, name=node.name), torch_name=node.name)


def _numbers(value: Any) -> list[float] | None:
    """A constant list argument (one const, or a list of consts as torch.export passes it) as numbers."""
    if isinstance(value, list | tuple):
        items = [const_value(v) for v in value]
        if any(v is None for v in items):
            raise NotImplementedError("resizing here needs constant sizes / scale factors")
        return [float(np.ravel(v)[0]) for v in items]
    found = const_value(value)
    return None if found is None else [float(v) for v in np.ravel(found)]


@rescue(
    "upsample_linear1d",
    "coremltools 9.0 refuses a non-integer scale_factor without recompute_scale_factor (align_corners=False)",
    override=True,
    aliases=("upsample_linear1d.vec",),
)
def upsample_linear1d(context: Any, node: Any) -> object:
    """``F.interpolate(mode="linear", scale_factor=s)``, non-integer ``s``: one matmul with PyTorch's weights."""
    from coremltools.converters.mil.frontend.torch import ops
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.type_mapping import nptype_from_builtin

    found = _fractional_scale_1d(context, node, has_align=True)
    if found is None:
        ops.upsample_linear1d(context, node)
        return DELEGATED
    x, size_out, scale = found
    weights = _kernel_1d("upsample_linear1d", int(x.shape[-1]), size_out, scale)
    dtype = nptype_from_builtin(x.dtype)
    context.add(mb.matmul(x=x, y=np.ascontiguousarray(weights.T.astype(dtype)), name=node.name), node.name)
    return None


@rescue(
    "upsample_nearest1d",
    "coremltools 9.0 maps a non-integer scale_factor to Core ML's in/out spacing: wrong values, no error",
    override=True,
    aliases=("upsample_nearest1d.vec",),
)
def upsample_nearest1d(context: Any, node: Any) -> object:
    """``F.interpolate(mode="nearest", scale_factor=s)`` on rank 3, non-integer ``s``: a gather of PyTorch's picks."""
    from coremltools.converters.mil.frontend.torch import ops
    from coremltools.converters.mil.mil import Builder as mb

    found = _fractional_scale_1d(context, node, has_align=False)
    if found is None:
        ops.upsample_nearest1d(context, node)
        return DELEGATED
    x, size_out, scale = found
    picks = (
        _kernel_1d("upsample_nearest1d", int(x.shape[-1]), size_out, scale).argmax(axis=1).astype(np.int32)
    )
    context.add(mb.gather(x=x, indices=picks, axis=2, name=node.name), torch_name=node.name)
    return None


def _fractional_scale_1d(context: Any, node: Any, has_align: bool) -> tuple[Any, int, float] | None:
    """(x, output length, scale) when a rank-3 resize maps with a non-integer user scale; None otherwise.

    Both overloads, ``(x, output_size, [align_corners,] scales)`` and ``.vec`` ``(..., scale_factors)``,
    carry one scale argument (a float or a one-element list).
    """
    from coremltools.converters.mil.mil.types.symbolic import is_symbolic

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    if x.rank != 3 or is_symbolic(x.shape[-1]):
        return None
    if has_align and const_value(arg(context, node, inputs, 2, "align_corners"), False):
        return None  # align_corners maps with (in - 1) / (out - 1), as Core ML does
    position = 3 if has_align else 2
    try:
        # torch.export may pass it by keyword: scale_factors (.vec) or scales (default overload)
        found = _numbers(arg(context, node, inputs, position, "scale_factors"))
        if found is None and len(inputs) <= position:
            found = _numbers(arg(context, node, inputs, position, "scales"))
    except NotImplementedError:
        return None
    if not found or float(found[0]) == int(found[0]):
        return None
    scale = float(found[0])
    return x, math.floor(int(x.shape[-1]) * scale), scale


def _kernel_1d(kernel: str, size_in: int, size_out: int, scale: float) -> np.ndarray:
    """The (size_out, size_in) matrix of a 1-D aten resize kernel (align_corners False), from basis vectors."""
    import torch

    fn = getattr(torch.ops.aten, kernel).default
    basis = torch.eye(size_in, dtype=torch.float64).reshape(size_in, 1, size_in)
    response = (
        fn(basis, [size_out], False, scale) if kernel == "upsample_linear1d" else fn(basis, [size_out], scale)
    )
    return response.reshape(size_in, size_out).T.numpy()
