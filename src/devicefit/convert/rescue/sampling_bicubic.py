"""``F.grid_sample(mode="bicubic")``: PyTorch's 16-tap bicubic (A = -0.75) for any grid, as gathers in MIL.

coremltools 9.0 refuses bicubic sampling (MIL ``resample`` and ``affine`` have no bicubic mode). PyTorch's CPU
kernel (``GridSamplerKernel.cpp``, ``ApplyGridSample<..., Bicubic>``) unnormalizes the grid without clipping,
takes ``floor`` and the fraction ``t`` per axis, reads the 4 x 4 pixels around it, each tap's coordinate passed
through the padding mode on its own (``compute_coordinates``: zeros reads 0 outside, border clips, reflection
reflects then clips), and interpolates four rows in x, then the column in y, with the cubic convolution weights.
The same steps are built here from elementwise ops and one batched gather of the 16 taps, so the grid may be
computed at run time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import select

_A = -0.75  # PyTorch's bicubic convolution constant (aten/src/ATen/native/UpSample.h)


def grid_sample_bicubic(
    context: Any, node: Any, x: Any, grid: Any, padding: str, align_corners: bool
) -> None:
    """Add ``grid_sample(x, grid, mode="bicubic")`` for a rank-4 ``x`` of static height and width.

    ``grid`` is a MIL var (N, Ho, Wo, 2) of ``(x, y)`` coordinates in ``[-1, 1]``.
    """
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic

    if x.rank != 4 or any_symbolic(x.shape[1:]):
        raise NotImplementedError(
            f"grid_sample(mode='bicubic') needs a rank-4 input with static channels, height and width, got {x.shape}"
        )
    channels, height, width = (int(d) for d in x.shape[1:])
    if grid.rank != 4 or any_symbolic(grid.shape[1:]):
        raise NotImplementedError(
            f"grid_sample(mode='bicubic') needs a (N, H_out, W_out, 2) grid, got {grid.shape}"
        )
    out_h, out_w = int(grid.shape[1]), int(grid.shape[2])
    points = out_h * out_w
    # NOTE: Core ML tensors have rank <= 5, so the output pixels are one axis: (N, P) coordinates, P = Ho * Wo
    flat_grid = mb.reshape(x=grid, shape=[-1, points, 2])
    ends = [True, True, False]
    gx = mb.squeeze(x=mb.slice_by_index(x=flat_grid, begin=[0, 0, 0], end=[0, 0, 1], end_mask=ends), axes=[2])
    gy = mb.squeeze(x=mb.slice_by_index(x=flat_grid, begin=[0, 0, 1], end=[0, 0, 2], end_mask=ends), axes=[2])
    cols, valid_x, wx = _axis(mb, gx, width, padding, align_corners)
    rows, valid_y, wy = _axis(mb, gy, height, padding, align_corners)
    # the 16 taps' flat pixel numbers, (N, P, 4 rows, 4 columns) -> (N, P * 16)
    row_base = mb.mul(x=mb.stack(values=rows, axis=2), y=np.int32(width))
    col_taps = mb.stack(values=cols, axis=2)
    flat = mb.add(x=mb.expand_dims(x=row_base, axes=[3]), y=mb.expand_dims(x=col_taps, axes=[2]))
    pixels = mb.reshape(x=mb.transpose(x=x, perm=[0, 2, 3, 1]), shape=[-1, height * width, channels])
    indices = mb.reshape(x=flat, shape=[-1, points * 16])
    taken = mb.gather(x=pixels, indices=indices, axis=1, batch_dims=1)  # (N, P * 16, C)
    taps = mb.reshape(x=taken, shape=[-1, points, 16, channels])
    if padding == "zeros":
        inside = mb.logical_and(
            x=mb.expand_dims(x=mb.stack(values=valid_y, axis=2), axes=[3]),
            y=mb.expand_dims(x=mb.stack(values=valid_x, axis=2), axes=[2]),
        )
        # select, not a product with the mask: a tap outside reads 0 even next to an inf pixel
        inside = mb.reshape(x=inside, shape=[-1, points, 16, 1])
        taps = select(cond=inside, a=taps, b=np.zeros((), dtype=np.float32))
    interpolated_rows = [_cubic(mb, [_tap(mb, taps, 4 * i + j) for j in range(4)], wx) for i in range(4)]
    out = _cubic(mb, interpolated_rows, wy)  # (N, P, C)
    out = mb.reshape(
        x=mb.transpose(x=out, perm=[0, 2, 1]), shape=[-1, channels, out_h, out_w], name=node.name
    )
    context.add(out, torch_name=node.name)


def _tap(mb: Any, taps: Any, k: int) -> Any:
    """Tap ``k`` (row ``k // 4``, column ``k % 4``) of every output pixel: (N, P, C)."""
    mask = [True, True, False, True]
    piece = mb.slice_by_index(
        x=taps, begin=[0, 0, k, 0], end=[0, 0, k + 1, 0], begin_mask=mask, end_mask=mask
    )
    return mb.squeeze(x=piece, axes=[2])


def _cubic(mb: Any, values: list, weights: list) -> Any:
    """``v0 w0 + v1 w1 + v2 w2 + v3 w3`` in PyTorch's order; weights are (N, P), values (N, P, C)."""
    total = None
    for value, weight in zip(values, weights):
        term = mb.mul(x=value, y=mb.expand_dims(x=weight, axes=[2]))
        total = term if total is None else mb.add(x=total, y=term)
    return total


def _axis(mb: Any, coord: Any, size: int, padding: str, align_corners: bool) -> tuple[list, list, list]:
    """Per axis: the 4 tap indices (int32, in range), whether each is inside (zeros padding) and the 4 weights."""
    # PyTorch's vectorized unnormalize: (g + 1) * (size - 1) / 2, or (g + 1) * size / 2 - 0.5
    if align_corners:
        source = mb.mul(x=mb.add(x=coord, y=1.0), y=(size - 1) / 2.0)
    else:
        source = mb.sub(x=mb.mul(x=mb.add(x=coord, y=1.0), y=size / 2.0), y=0.5)
    start = mb.floor(x=source)
    t = mb.sub(x=source, y=start)
    weights = [
        _far(mb, mb.add(x=t, y=1.0)),
        _near(mb, t),
        _near(mb, mb.sub(x=1.0, y=t)),
        _far(mb, mb.sub(x=2.0, y=t)),
    ]
    indices, valid = [], []
    for offset in (-1.0, 0.0, 1.0, 2.0):
        tap = mb.add(x=start, y=offset)
        if padding == "zeros":
            valid.append(
                mb.logical_and(x=mb.greater_equal(x=tap, y=0.0), y=mb.less_equal(x=tap, y=float(size - 1)))
            )
        elif padding == "reflection":
            tap = _reflect(mb, tap, size, align_corners)
        if size == 1:  # MIL clip needs alpha < beta: an axis of one pixel reads index 0 whatever the tap
            indices.append(mb.fill(shape=mb.shape(x=tap), value=np.int32(0)))
        else:
            indices.append(mb.cast(x=mb.clip(x=tap, alpha=0.0, beta=float(size - 1)), dtype="int32"))
    return indices, valid, weights


def _near(mb: Any, x: Any) -> Any:
    """``((A + 2) x - (A + 3)) x x + 1`` for ``|x| <= 1``."""
    inner = mb.sub(x=mb.mul(x=x, y=_A + 2.0), y=_A + 3.0)
    return mb.add(x=mb.mul(x=mb.mul(x=inner, y=x), y=x), y=1.0)


def _far(mb: Any, x: Any) -> Any:
    """``((A x - 5A) x + 8A) x - 4A`` for ``1 < |x| < 2``."""
    inner = mb.add(x=mb.mul(x=mb.sub(x=mb.mul(x=x, y=_A), y=5.0 * _A), y=x), y=8.0 * _A)
    return mb.sub(x=mb.mul(x=inner, y=x), y=4.0 * _A)


def _reflect(mb: Any, coord: Any, size: int, align_corners: bool) -> Any:
    """PyTorch's ``reflect_coordinates`` about ``[0, size - 1]`` (align_corners) or ``[-0.5, size - 0.5]``."""
    low, span = (0.0, float(size - 1)) if align_corners else (-0.5, float(size))
    if span == 0:
        return mb.mul(x=coord, y=0.0)
    distance = mb.abs(x=mb.sub(x=coord, y=low))
    flips = mb.floor(x=mb.real_div(x=distance, y=span))
    extra = mb.sub(x=distance, y=mb.mul(x=flips, y=span))
    odd = mb.not_equal(x=mb.sub(x=flips, y=mb.mul(x=mb.floor(x=mb.mul(x=flips, y=0.5)), y=2.0)), y=0.0)
    # NOTE: a distance on a multiple of span may round to either neighbouring flip count; the reflection is
    # continuous there (span - span == 0 + 0), so both give the same tap
    return mb.add(x=select(cond=odd, a=mb.sub(x=span, y=extra), b=extra), y=low)


def affine_grid_var(theta: Any, size: list[int], align_corners: bool) -> Any:
    """The (N, H, W, 2) grid of ``F.affine_grid(theta, size)`` for a run-time ``theta`` (N, 2, 3).

    PyTorch's base grid (x, y, 1 per pixel) is taken from PyTorch itself (identity theta) and multiplied by
    ``theta`` transposed, as ``affine_grid_generator`` does (a 3-term dot product per coordinate).
    """
    import torch
    import torch.nn.functional as F
    from coremltools.converters.mil.mil import Builder as mb

    _, _, height, width = size
    identity = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    base_xy = (
        F.affine_grid(identity, [1, 1, height, width], align_corners=align_corners).reshape(-1, 2).numpy()
    )
    base = np.concatenate([base_xy, np.ones((height * width, 1), np.float32)], axis=1)[None]  # (1, HW, 3)
    grid = mb.matmul(x=base.astype(np.float32), y=theta, transpose_y=True)  # (N, HW, 2)
    return mb.reshape(x=grid, shape=[-1, height, width, 2])
