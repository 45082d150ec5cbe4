"""Resizing of the last two axes: upsample_*, resize_*, iOS17 resize, crop (crop_resize, affine and resample
live in sampling.py).

Everything is built from two 1-D samplers applied axis by axis (bilinear is separable):
``_grid`` gives the source coordinate of every output index for a MIL ``sampling_mode``, ``_lerp`` and
``_nearest`` read the input there.

Coordinate conventions (MIL docs, cross-checked against what coremltools' converters map to each op):

* ``upsample_bilinear``: align_corners -> ``(in-1)/(out-1)`` spacing; otherwise half-pixel centers
  (iOS16 ``half_pixel_centers=False`` gives TF's legacy ``i * in/out``). The scale is recomputed from the
  output size (``recompute_scale_factor=True`` in PyTorch terms).
* ``upsample_nearest_neighbor``: ``floor(i * in/out)`` (TF legacy / PyTorch ``mode="nearest"``).
* ``resize_nearest_neighbor``: ``floor((i + 0.5) * in/out)`` (TF ``half_pixel_centers=True``, which is
  what the TF converter maps to this op).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from devicefit.interp.registry import bool_, float_, int_, ints, register, str_


def _aligned(i: torch.Tensor, extent: float, n: int, single: float) -> torch.Tensor:
    return i * (extent / (n - 1)) if n > 1 else torch.full_like(i, single)


# resize_bilinear's sampling_mode table: sample offsets i = 0..n-1 over an input interval [0, extent]
# (extent = X_in - 1; negative for a reversed crop_resize box). The MIL docs' min/max clamps are applied by callers.
GRID_OFFSETS: dict[str, Callable[[torch.Tensor, float, int], torch.Tensor]] = {
    "STRICT_ALIGN_CORNERS": lambda i, extent, n: _aligned(i, extent, n, 0.0),
    "ALIGN_CORNERS": lambda i, extent, n: _aligned(i, extent, n, extent / 2),
    "DEFAULT": lambda i, extent, n: i * ((extent + 1) / n),
    "OFFSET_CORNERS": lambda i, extent, n: (i + 0.5) * (max(1.0, extent) / n),
    "UNALIGN_CORNERS": lambda i, extent, n: (i + 0.5) * ((extent + 1) / n) - 0.5,
}


def grid_offsets(extent: float, n: int, mode: str) -> torch.Tensor:
    """Unclamped float64 sample offsets of ``n`` outputs over ``[0, extent]`` for a MIL ``sampling_mode``."""
    try:
        offsets = GRID_OFFSETS[mode]
    except KeyError:
        raise ValueError(f"unknown sampling_mode {mode!r}; expected one of {sorted(GRID_OFFSETS)}") from None
    return offsets(torch.arange(n, dtype=torch.float64), extent, n)


def _grid(size_in: float, size_out: int, mode: str) -> torch.Tensor:
    """Source coordinates (float64, clamped to ``[0, size_in-1]``) of each output index."""
    last = float(size_in - 1)
    return grid_offsets(last, size_out, mode).clamp(0.0, last)


def _lerp(x: torch.Tensor, axis: int, coords: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of ``x`` along ``axis`` at (in-range) float ``coords``."""
    lo = coords.floor().long().clamp(max=x.shape[axis] - 1)
    hi = (lo + 1).clamp(max=x.shape[axis] - 1)
    frac = (coords - lo).to(torch.float32)
    shape = [1] * x.dim()
    shape[axis] = -1
    frac = frac.reshape(shape)
    a, b = x.index_select(axis, lo), x.index_select(axis, hi)
    return a * (1 - frac) + b * frac


# Use torch's fused bilinear kernel for the sampling modes it computes identically (see _bilinear);
# FAST = False runs only the reference grid + lerp. tests/interp/test_fast_paths.py checks both agree.
FAST = True
_TORCH_ALIGN = {"STRICT_ALIGN_CORNERS": True, "UNALIGN_CORNERS": False}


def _bilinear(x: torch.Tensor, out_h: int, out_w: int, mode: str) -> torch.Tensor:
    align = _TORCH_ALIGN.get(mode)
    # align_corners=True equals STRICT_ALIGN_CORNERS for outputs > 1; align_corners=False is half-pixel
    # sampling with source clamped at 0, i.e. UNALIGN_CORNERS, when torch derives the scale from sizes.
    if FAST and align is not None and x.dim() == 4 and x.is_floating_point() and out_h > 1 and out_w > 1:
        return torch.nn.functional.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=align)
    return bilinear_reference(x, out_h, out_w, mode)


def bilinear_reference(x: torch.Tensor, out_h: int, out_w: int, mode: str) -> torch.Tensor:
    """The spec: separable linear interpolation on the sampling grid ``mode`` defines."""
    y = _lerp(x, -1, _grid(x.shape[-1], out_w, mode))
    return _lerp(y, -2, _grid(x.shape[-2], out_h, mode))


def _nearest_index(size_in: int, size_out: int, half_pixel: bool) -> torch.Tensor:
    # float32 arithmetic on purpose: PyTorch computes nearest source indices in float32.
    scale = torch.tensor(size_in / size_out, dtype=torch.float32)
    i = torch.arange(size_out, dtype=torch.float32)
    src = ((i + 0.5) if half_pixel else i) * scale
    return src.floor().long().clamp(0, size_in - 1)


def _nearest(x: torch.Tensor, out_h: int, out_w: int, half_pixel: bool) -> torch.Tensor:
    y = x.index_select(-1, _nearest_index(x.shape[-1], out_w, half_pixel))
    return y.index_select(-2, _nearest_index(x.shape[-2], out_h, half_pixel))


def _scaled(size: int, scale: float) -> int:
    # float32 product, as coremltools' type inference computes the declared output size.
    return int(torch.floor(torch.tensor(scale, dtype=torch.float32) * size).item())


@register("upsample_nearest_neighbor", attrs={"scale_factor_height": float_, "scale_factor_width": float_})
def upsample_nearest_neighbor(x, scale_factor_height=1.0, scale_factor_width=1.0):
    out_h, out_w = _scaled(x.shape[-2], scale_factor_height), _scaled(x.shape[-1], scale_factor_width)
    return _nearest(x, out_h, out_w, half_pixel=False)


@register("resize_nearest_neighbor", attrs={"target_size_height": int_, "target_size_width": int_})
def resize_nearest_neighbor(x, target_size_height, target_size_width):
    return _nearest(x, target_size_height, target_size_width, half_pixel=True)


_UPSAMPLE: dict[str, Callable[[Any], Any]] = {
    "scale_factor_height": float_,
    "scale_factor_width": float_,
    "align_corners": bool_,
}


@register("upsample_bilinear", attrs=_UPSAMPLE)
def upsample_bilinear(x, scale_factor_height=1.0, scale_factor_width=1.0, align_corners=True):
    mode = "STRICT_ALIGN_CORNERS" if align_corners else "UNALIGN_CORNERS"
    out_h, out_w = _scaled(x.shape[-2], scale_factor_height), _scaled(x.shape[-1], scale_factor_width)
    return _bilinear(x, out_h, out_w, mode)


@register("upsample_bilinear", since="iOS16", attrs={**_UPSAMPLE, "half_pixel_centers": bool_})
def upsample_bilinear_ios16(
    x, scale_factor_height=1.0, scale_factor_width=1.0, align_corners=True, half_pixel_centers=None
):
    if half_pixel_centers is None:
        half_pixel_centers = not align_corners
    if align_corners:
        mode = "STRICT_ALIGN_CORNERS"
    else:
        mode = "UNALIGN_CORNERS" if half_pixel_centers else "DEFAULT"
    out_h, out_w = _scaled(x.shape[-2], scale_factor_height), _scaled(x.shape[-1], scale_factor_width)
    return _bilinear(x, out_h, out_w, mode)


@register(
    "resize_bilinear",
    attrs={"target_size_height": int_, "target_size_width": int_, "sampling_mode": str_},
)
def resize_bilinear(x, target_size_height=1, target_size_width=1, sampling_mode="DEFAULT"):
    return _bilinear(x, target_size_height, target_size_width, sampling_mode)


@register(
    "resize",
    since="iOS17",
    attrs={"shape": ints, "resized_dims": int_, "interpolation_mode": str_, "sampling_mode": str_},
)
def resize(x, shape, resized_dims, interpolation_mode="LINEAR", sampling_mode="DEFAULT"):
    # The last ``resized_dims`` entries of ``shape`` size the last axes of x; 0 keeps x's size.
    sizes = list(x.shape)
    for i in range(resized_dims):
        want = shape[len(shape) - resized_dims + i]
        axis = x.dim() - resized_dims + i
        sizes[axis] = want or x.shape[axis]
    y = x if x.is_floating_point() else x.to(torch.float32)
    for axis in range(x.dim() - resized_dims, x.dim()):
        if sizes[axis] == y.shape[axis]:
            continue
        if interpolation_mode == "NEAREST_NEIGHBOR":
            y = y.index_select(axis, _resize_nearest_index(y.shape[axis], sizes[axis], sampling_mode))
        else:
            y = _lerp(y, axis, _grid(y.shape[axis], sizes[axis], sampling_mode))
    return y if y.dtype == x.dtype else y.round().to(x.dtype)


def _resize_nearest_index(size_in: int, size_out: int, mode: str) -> torch.Tensor:
    # NOTE: the TF converter maps half-pixel nearest resizing to resize(NEAREST_NEIGHBOR, DEFAULT), so
    # DEFAULT / UNALIGN_CORNERS use half-pixel centers; the aligned modes round the aligned grid.
    if mode in ("DEFAULT", "UNALIGN_CORNERS"):
        return _nearest_index(size_in, size_out, half_pixel=True)
    return (_grid(size_in, size_out, mode) + 0.5).floor().long().clamp(0, size_in - 1)


@register("crop", attrs={"crop_height": ints, "crop_width": ints})
def crop(x, crop_height, crop_width):
    top, bottom = crop_height
    left, right = crop_width
    return x[..., top : x.shape[-2] - bottom, left : x.shape[-1] - right]
