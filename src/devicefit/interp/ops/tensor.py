"""Shape and layout ops (MIL ``tensor_transformation`` and the creation ops of ``tensor_operation``).

reshape, reshape_like, transpose, concat, split, stack, squeeze, expand_dims, slice_by_index,
slice_by_size, slice_update, tile, pad, flatten2d, reverse, reverse_sequence, shape, fill, fill_like,
range_1d, identity, depth_to_space, space_to_depth, space_to_batch, batch_to_space, pixel_shuffle,
pixel_unshuffle, sliding_windows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from devicefit.interp.ops._util import norm_axes, norm_axis
from devicefit.interp.registry import bool_, float_, int_, ints, register, str_


def bools(v: Any) -> list[bool]:
    """Any bool vector (tensor, numpy, list) -> list[bool]."""
    return [bool(i) for i in ints(v)]


# ---------------------------------------------------------------- reshapes
def _reshape_zeros_ios15(from_shape: list[int], to_shape: list[int]) -> list[int]:
    # NOTE: before iOS17 a 0 copies the dim at the same index (shape and x must have equal rank).
    return [from_shape[i] if s == 0 else s for i, s in enumerate(to_shape)]


def _reshape_zeros_ios17(from_shape: list[int], to_shape: list[int]) -> list[int]:
    # NOTE: from iOS17 zeros are right-aligned with x.shape; a 0 with no counterpart becomes 1.
    out = list(to_shape)
    for k in range(1, len(out) + 1):
        if out[-k] == 0:
            out[-k] = from_shape[-k] if k <= len(from_shape) else 1
    return out


@register("reshape", attrs={"shape": ints})
def reshape(x, shape):
    return x.reshape(_reshape_zeros_ios15(list(x.shape), shape) if 0 in shape else shape)


@register("reshape", since="iOS17", attrs={"shape": ints})
def reshape_ios17(x, shape):
    return x.reshape(_reshape_zeros_ios17(list(x.shape), shape) if 0 in shape else shape)


@register("reshape_like", since="iOS16", variadic=("ref_tensors", "begins", "ends", "end_masks"))
def reshape_like(x, ref_tensors, begins, ends, end_masks):
    shape: list[int] = []
    for ref, begin, end, end_mask in zip(ref_tensors, begins, ends, end_masks):
        dims = list(ref.shape)
        shape += dims[int(begin) :] if bool(end_mask) else dims[int(begin) : int(end)]
    return x.reshape(shape)


@register("transpose", attrs={"perm": ints})
def transpose(x, perm):
    return x.permute(perm) if x.dim() else x


@register("flatten2d", attrs={"axis": int_})
def flatten2d(x, axis=1):
    shape = list(x.shape)
    axis = norm_axis(axis, len(shape))
    return x.reshape(math.prod(shape[:axis]), math.prod(shape[axis:]))


@register("squeeze", attrs={"axes": ints})
def squeeze(x, axes=None):
    if axes is None:
        return x.squeeze()
    # NOTE: like PyTorch (not numpy), listed axes whose size is not 1 are kept, not an error.
    return x.squeeze(tuple(norm_axes(axes, x.dim())))


@register("expand_dims", attrs={"axes": ints})
def expand_dims(x, axes):
    out_rank = x.dim() + len(axes)
    for axis in sorted(norm_axes(axes, out_rank)):
        x = x.unsqueeze(axis)
    return x


# ---------------------------------------------------------------- joining and splitting
@register("concat", attrs={"axis": int_, "interleave": bool_}, variadic=("values",))
def concat(values, axis, interleave=False):
    if values[0].dim() == 0:
        return torch.stack(values)
    axis = norm_axis(axis, values[0].dim())
    if not interleave:
        return torch.cat(values, dim=axis)
    # interleave: out[k::n] along axis = values[k]; stacking right after axis then merging does that.
    shape = list(values[0].shape)
    shape[axis] *= len(values)
    return torch.stack(values, dim=axis + 1).reshape(shape)


@register("split", attrs={"num_splits": int_, "split_sizes": ints, "axis": int_})
def split(x, axis, num_splits=None, split_sizes=None):
    axis = norm_axis(axis, x.dim())
    if split_sizes is None:
        split_sizes = [x.shape[axis] // num_splits] * num_splits
    return tuple(torch.split(x, split_sizes, dim=axis))


@register("stack", attrs={"axis": int_}, variadic=("values",))
def stack(values, axis):
    return torch.stack(values, dim=axis)


@register("tile", attrs={"reps": ints})
def tile(x, reps):
    return x.repeat(reps)


# ---------------------------------------------------------------- slicing
def _slice_ranges(shape, begin, end, stride, begin_mask, end_mask, squeeze_mask) -> list[range]:
    """Per-axis index ranges of a numpy-style slice, exactly as MIL's slice_by_index defines it."""
    rank = len(shape)
    stride = stride or [1] * rank
    begin_mask = begin_mask or [False] * rank
    end_mask = end_mask or [False] * rank
    squeeze_mask = squeeze_mask or [False] * rank
    ranges = []
    for i, dim in enumerate(shape):
        if squeeze_mask[i]:
            b = begin[i] + dim if begin[i] < 0 else begin[i]
            ranges.append(range(b, b + 1))
            continue
        b = None if begin_mask[i] else begin[i]
        e = None if end_mask[i] else end[i]
        # slice.indices clamps and normalises exactly like numpy (negative strides included).
        ranges.append(range(*slice(b, e, stride[i]).indices(dim)))
    return ranges


def _index(ranges: list[range]) -> tuple:
    """An index for x[...] selecting the cartesian product of ``ranges``."""
    if all(r.step > 0 for r in ranges):
        return tuple(slice(r.start, r.stop, r.step) for r in ranges)
    # torch has no negative-step slicing: use an open mesh of index vectors (numpy's ix_).
    rank = len(ranges)
    return tuple(
        torch.tensor(list(r), dtype=torch.int64).reshape([1] * i + [-1] + [1] * (rank - i - 1))
        for i, r in enumerate(ranges)
    )


_SLICE_ATTRS: dict[str, Callable[[Any], Any]] = {
    "begin": ints,
    "end": ints,
    "stride": ints,
    "begin_mask": bools,
    "end_mask": bools,
    "squeeze_mask": bools,
}


@register("slice_by_index", attrs=_SLICE_ATTRS)
def slice_by_index(x, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
    ranges = _slice_ranges(x.shape, begin, end, stride, begin_mask, end_mask, squeeze_mask)
    out = x[_index(ranges)]
    keep = [len(r) for i, r in enumerate(ranges) if not (squeeze_mask and squeeze_mask[i])]
    return out.reshape(keep)


@register("slice_update", since="iOS18", attrs=_SLICE_ATTRS)
def slice_update(x, update, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
    ranges = _slice_ranges(x.shape, begin, end, stride, begin_mask, end_mask, squeeze_mask)
    out = x.clone()
    out[_index(ranges)] = update.to(x.dtype).reshape([len(r) for r in ranges])
    return out


@register("slice_by_size", attrs={"begin": ints, "size": ints})
def slice_by_size(x, begin, size):
    index = []
    for dim, b, s in zip(x.shape, begin, size):
        b = b + dim if b < 0 else b
        index.append(slice(b, None) if s == -1 else slice(b, b + s))
    return x[tuple(index)]


@register("reverse", attrs={"axes": ints})
def reverse(x, axes=None):
    return torch.flip(x, dims=norm_axes(axes, x.dim()))


@register("reverse_sequence", attrs={"seq_axis": int_, "batch_axis": int_})
def reverse_sequence(x, lengths, seq_axis=0, batch_axis=0):
    rank = x.dim()
    seq_axis, batch_axis = norm_axis(seq_axis, rank), norm_axis(batch_axis, rank)
    steps = torch.arange(x.shape[seq_axis])
    lengths = lengths.to(torch.int64).reshape(-1, 1)
    # position s of batch b reads from lengths[b]-1-s inside the reversed prefix, else stays.
    src = torch.where(steps < lengths, lengths - 1 - steps, steps)  # [batch, seq]
    if batch_axis > seq_axis:
        src = src.T
    view = [1] * rank
    view[batch_axis], view[seq_axis] = x.shape[batch_axis], x.shape[seq_axis]
    return torch.gather(x, seq_axis, src.reshape(view).expand(x.shape))


@register("sliding_windows", attrs={"axis": int_, "size": int_, "stride": int_})
def sliding_windows(x, axis, size, stride=1):
    axis = norm_axis(axis, x.dim())
    # unfold appends the window dim last; MIL puts it right after the windowed axis.
    return x.unfold(axis, size, stride).movedim(-1, axis + 1)


# ---------------------------------------------------------------- padding
def _pad_index(n: int, before: int, after: int, mode: str) -> torch.Tensor:
    pos = torch.arange(-before, n + after)
    if mode == "replicate":
        return pos.clamp(0, n - 1)
    # reflect (without repeating the edge): -1 -> 1, n -> n-2
    period = 2 * (n - 1) if n > 1 else 1
    pos = pos.remainder(period)
    return torch.where(pos >= n, period - pos, pos)


@register("pad", attrs={"pad": ints, "mode": str_, "constant_val": float_})
def pad(x, pad, mode="constant", constant_val=0.0):
    pairs = [(pad[2 * i], pad[2 * i + 1]) for i in range(len(pad) // 2)]
    first = x.dim() - len(pairs)  # pad covers the last len(pad)/2 axes
    if mode == "constant":
        flat = [p for pair in reversed(pairs) for p in pair]  # F.pad wants the last axis first
        return F.pad(x, flat, mode="constant", value=constant_val)
    for i, (before, after) in enumerate(pairs):
        if before or after:
            axis = first + i
            x = x.index_select(axis, _pad_index(x.shape[axis], before, after, mode))
    return x


# ---------------------------------------------------------------- creation
@register("shape")
def shape(x):
    return torch.tensor(list(x.shape), dtype=torch.int32)


def _full(size: list[int], value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return torch.full(size, value.item(), dtype=value.dtype)
    return torch.full(size, value, dtype=torch.float32)


@register("fill", attrs={"shape": ints})
def fill(shape, value=0.0):
    return _full(shape, value)


@register("fill_like", since="iOS16")
def fill_like(ref_tensor, value=0.0):
    return _full(list(ref_tensor.shape), value)


@register("range_1d")
def range_1d(end, start, step):
    if start.is_floating_point():
        return torch.arange(start.item(), end.item(), step.item(), dtype=torch.float32)
    return torch.arange(int(start), int(end), int(step), dtype=start.dtype)


@register("identity")
def identity(x):
    return x


# ---------------------------------------------------------------- space <-> depth / batch
@register("depth_to_space", attrs={"block_size": int_})
def depth_to_space(x, block_size):
    # NOTE: TensorFlow's DCR order: channel c_in = (i * bs + j) * C_out + c. (pixel_shuffle is CRD.)
    n, c, h, w = x.shape
    bs = block_size
    y = x.reshape(n, bs, bs, c // (bs * bs), h, w).permute(0, 3, 4, 1, 5, 2)
    return y.reshape(n, c // (bs * bs), h * bs, w * bs)


@register("space_to_depth", attrs={"block_size": int_})
def space_to_depth(x, block_size):
    n, c, h, w = x.shape
    bs = block_size
    y = x.reshape(n, c, h // bs, bs, w // bs, bs).permute(0, 3, 5, 1, 2, 4)
    return y.reshape(n, c * bs * bs, h // bs, w // bs)


@register("space_to_batch", attrs={"block_shape": ints, "paddings": ints})
def space_to_batch(x, block_shape, paddings):
    b0, b1 = block_shape
    x = F.pad(x, [paddings[2], paddings[3], paddings[0], paddings[1]])
    n, c, h, w = x.shape
    # TensorFlow order: output batch = (i * b1 + j) * n + batch, for block offsets (i, j).
    y = x.reshape(n, c, h // b0, b0, w // b1, b1).permute(3, 5, 0, 1, 2, 4)
    return y.reshape(b0 * b1 * n, c, h // b0, w // b1)


@register("batch_to_space", attrs={"block_shape": ints, "crops": ints})
def batch_to_space(x, block_shape, crops):
    b0, b1 = block_shape
    nb, c, h, w = x.shape
    n = nb // (b0 * b1)
    y = x.reshape(b0, b1, n, c, h, w).permute(2, 3, 4, 0, 5, 1).reshape(n, c, h * b0, w * b1)
    return y[:, :, crops[0] : h * b0 - crops[1], crops[2] : w * b1 - crops[3]]


@register("pixel_shuffle", attrs={"upscale_factor": int_})
def pixel_shuffle(x, upscale_factor):
    return F.pixel_shuffle(x, upscale_factor)


@register("pixel_unshuffle", since="iOS16", attrs={"downscale_factor": int_})
def pixel_unshuffle(x, downscale_factor):
    return F.pixel_unshuffle(x, downscale_factor)
