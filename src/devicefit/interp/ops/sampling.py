"""Sampling at computed positions: crop_resize (boxes), affine and resample (grids).

``crop_resize`` reads each box with the 1-D grids of ``resize_bilinear``'s ``sampling_mode`` table, taking the
box ``[start, end]`` as that table's input interval ``[0, X - 1]`` (so ``X - 1 = end - start``, signed: a box
with ``end < start`` samples in reverse, as the runtime does). Samples outside the image get ``pad_value``.
``affine`` / ``resample`` are PyTorch's ``grid_sample`` after mapping MIL's coordinate and padding modes onto it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from devicefit.interp.ops.resize import _lerp, grid_offsets
from devicefit.interp.registry import bool_, float_, int_, ints, register, str_


def _box_offsets(extent: float, n: int, mode: str) -> torch.Tensor:
    """Sample offsets from a box's start for a box spanning ``extent`` pixels (negative: reversed)."""
    # the table's min(X - 1, max(0, .)) keeps samples inside the box
    return grid_offsets(extent, n, mode).clamp(min(0.0, extent), max(0.0, extent))


_BOX_MODES = {
    # -> (h_start, w_start, h_end, w_end) from the 4 numbers of a box
    "CORNERS_HEIGHT_FIRST": lambda b: (b[0], b[1], b[2], b[3]),
    "CORNERS_WIDTH_FIRST": lambda b: (b[1], b[0], b[3], b[2]),
    "CENTER_SIZE_HEIGHT_FIRST": lambda b: (
        b[0] - b[2] / 2,
        b[1] - b[3] / 2,
        b[0] + b[2] / 2,
        b[1] + b[3] / 2,
    ),
    "CENTER_SIZE_WIDTH_FIRST": lambda b: (b[1] - b[3] / 2, b[0] - b[2] / 2, b[1] + b[3] / 2, b[0] + b[2] / 2),
}


def _box_axis(start: float, end: float, size_out: int, size_in: int, mode: str):
    """Absolute coordinates of a box's samples along one axis, and which fall inside the image."""
    coords = start + _box_offsets(end - start, size_out, mode)
    inside = (coords >= 0) & (coords <= size_in - 1)
    return coords.clamp(0, size_in - 1), inside


def _crop_boxes(
    x, boxes, indices, target_height, target_width, normalized, spatial_scale, box_mode, mode, pad_value
):
    """[N, C, target_height, target_width]: one bilinear crop of ``x[indices[n]]`` per box."""
    height, width = x.shape[-2:]
    if box_mode not in _BOX_MODES:
        raise ValueError(f"crop_resize: unknown box_coordinate_mode {box_mode!r}")
    crops = []
    for box, index in zip(boxes.to(torch.float64).tolist(), indices):
        h0, w0, h1, w1 = _BOX_MODES[box_mode](box)
        if normalized:
            h0, h1, w0, w1 = h0 * (height - 1), h1 * (height - 1), w0 * (width - 1), w1 * (width - 1)
        h0, w0, h1, w1 = (v * spatial_scale for v in (h0, w0, h1, w1))
        ys, y_in = _box_axis(h0, h1, target_height, height, mode)
        xs, x_in = _box_axis(w0, w1, target_width, width, mode)
        patch = _lerp(_lerp(x[int(index)], -2, ys), -1, xs)
        inside = (y_in[:, None] & x_in[None, :]).expand_as(patch)
        crops.append(torch.where(inside, patch, torch.full_like(patch, pad_value)))
    return torch.stack(crops)


_CROP: dict[str, Callable[[Any], Any]] = {
    "target_height": int_,
    "target_width": int_,
    "normalized_coordinates": bool_,
    "spatial_scale": float_,
    "box_coordinate_mode": str_,
    "sampling_mode": str_,
    "pad_value": float_,
}


@register("crop_resize", attrs=_CROP)
def crop_resize(
    x,
    roi,
    target_height=1,
    target_width=1,
    normalized_coordinates=False,
    spatial_scale=1.0,
    box_coordinate_mode="CORNERS_HEIGHT_FIRST",
    sampling_mode="DEFAULT",
    pad_value=0.0,
):
    # roi [N, 1, 4 or 5, 1, 1]. With 4 numbers every box crops every image: [N, B, C, h, w]. With 5 the
    # first is the image index: [N, 1, C, h, w] (the layout the TF converter squeezes).
    rois = roi.reshape(roi.shape[0], -1)
    args = (target_height, target_width, normalized_coordinates, spatial_scale, box_coordinate_mode)
    if rois.shape[1] == 5:
        indices = rois[:, 0].round().long().tolist()
        out = _crop_boxes(x, rois[:, 1:], indices, *args, sampling_mode, pad_value)
        return out.unsqueeze(1)
    per_image = [
        _crop_boxes(x, rois, [b] * rois.shape[0], *args, sampling_mode, pad_value) for b in range(x.shape[0])
    ]
    return torch.stack(per_image, dim=1)


@register("crop_resize", since="iOS17", attrs={**_CROP, "box_indices": ints})
def crop_resize_ios17(
    x,
    boxes,
    box_indices=None,
    target_height=1,
    target_width=1,
    normalized_coordinates=False,
    spatial_scale=1.0,
    box_coordinate_mode="CORNERS_HEIGHT_FIRST",
    sampling_mode="DEFAULT",
    pad_value=0.0,
):
    indices = box_indices if box_indices is not None else list(range(boxes.shape[0]))
    args = (target_height, target_width, normalized_coordinates, spatial_scale, box_coordinate_mode)
    return _crop_boxes(x, boxes, indices, *args, sampling_mode, pad_value)


@register(
    "affine",
    attrs={
        "output_height": int_,
        "output_width": int_,
        "sampling_mode": str_,
        "padding_mode": str_,
        "padding_value": float_,
        "coordinates_mode": str_,
        "align_corners": bool_,
    },
)
def affine(
    x,
    transform_matrix,
    output_height,
    output_width,
    sampling_mode="bilinear",
    padding_mode="constant",
    padding_value=0.0,
    coordinates_mode="normalized_minus_one_to_one",
    align_corners=True,
):
    # MIL only defines bilinear sampling, zero constant padding and [-1, 1] coordinates: exactly
    # PyTorch's affine_grid + grid_sample, which is what the torch converter maps to this op.
    import torch.nn.functional as F

    if (sampling_mode.lower(), padding_mode.lower(), coordinates_mode.lower()) != (
        "bilinear",
        "constant",
        "normalized_minus_one_to_one",
    ) or padding_value != 0.0:
        raise NotImplementedError(
            f"affine: only bilinear / constant 0 / normalized_minus_one_to_one is defined, got "
            f"{sampling_mode}, {padding_mode}={padding_value}, {coordinates_mode}"
        )
    theta = transform_matrix.reshape(-1, 2, 3).expand(x.shape[0], 2, 3)
    size = [x.shape[0], x.shape[1], output_height, output_width]
    grid = F.affine_grid(theta, size, align_corners=align_corners)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=align_corners)


def _to_pixels(c: torch.Tensor, size: int, mode: str, align_corners: bool) -> torch.Tensor:
    """Coordinates in ``coordinates_mode`` -> pixel units (pixel centres at 0 .. size-1)."""
    if mode == "unnormalized":
        return c
    if mode == "normalized_zero_to_one":
        c = 2 * c - 1
    elif mode != "normalized_minus_one_to_one":
        raise ValueError(f"resample: unknown coordinates_mode {mode!r}")
    return (c + 1) / 2 * (size - 1) if align_corners else ((c + 1) * size - 1) / 2


_RESAMPLE: dict[str, Callable[[Any], Any]] = {
    "sampling_mode": str_,
    "padding_mode": str_,
    "padding_value": float_,
    "coordinates_mode": str_,
    "align_corners": bool_,
}


@register("resample", attrs=_RESAMPLE)
def resample(
    x,
    coordinates,
    sampling_mode="bilinear",
    padding_mode="constant",
    padding_value=0.0,
    coordinates_mode="normalized_minus_one_to_one",
    align_corners=False,
):
    import torch.nn.functional as F

    height, width = x.shape[-2:]
    c = coordinates.to(torch.float32)
    px = _to_pixels(c[..., 0], width, coordinates_mode, align_corners)
    py = _to_pixels(c[..., 1], height, coordinates_mode, align_corners)
    # Hand grid_sample pixel coordinates renormalized so that its reflection matches MIL's:
    # "reflection" mirrors about the border pixel centres (grid_sample's align_corners=True),
    # "symmetric" about the image edges, repeating the border (align_corners=False).
    symmetric = padding_mode == "symmetric"

    def norm(p, size):
        if symmetric:
            return (2 * p + 1) / size - 1
        return 2 * p / max(size - 1, 1) - 1

    grid = torch.stack([norm(px, width), norm(py, height)], dim=-1)
    torch_padding = {
        "constant": "zeros",
        "border": "border",
        "reflection": "reflection",
        "symmetric": "reflection",
    }
    # Constant padding with a value v: sample (x - v) with zero padding, add v back (weights sum to 1).
    shifted = x - padding_value if padding_mode == "constant" and padding_value else x
    y = F.grid_sample(
        shifted,
        grid,
        mode="nearest" if sampling_mode == "nearest" else "bilinear",
        padding_mode=torch_padding[padding_mode],
        align_corners=not symmetric,
    )
    return y + padding_value if shifted is not x else y
