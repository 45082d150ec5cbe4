"""Weight compression ops: the ``constexpr_*`` family (palettization, sparsity, blockwise quantization).

These are compile-time constants: ``program.py`` folds them once at prepare time, so every input arrives as
a held tensor (sub-byte types unpacked by coremltools' loader: int4 as int8, uint1..uint6 as uint8) and
speed matters little. Semantics follow coremltools' ``decompress`` helpers in ``defs/iOS16/constexpr_ops.py``
and ``defs/iOS18/compression.py``. The two opsets differ in layout:

* iOS16 packs indices / masks into bytes (LSB first) and passes the output ``shape`` separately;
* iOS18 types them as ``uint1``..``uint8`` tensors of the logical shape, and adds per-block LUTs and scales.

Activation quantization (``quantize`` / ``dequantize``, iOS17) lives in ``quantization.py``.
"""

from __future__ import annotations

import torch

from devicefit.interp.dtypes import round_fp16
from devicefit.interp.registry import OpContext, int_, ints, register, str_

# ---------------------------------------------------------------- shared helpers


def unpack_bits(packed: torch.Tensor, nbits: int, count: int) -> torch.Tensor:
    """Unpack ``count`` unsigned ``nbits``-wide fields packed LSB-first into bytes (iOS16 layout).

    A field may straddle two bytes: its low bits sit in the high bits of one byte and the rest in the low
    bits of the next, so the byte stream is read as one little-endian bit string.
    """
    shifts = torch.arange(8, dtype=torch.int32)
    bits = (packed.to(torch.int32).reshape(-1, 1) >> shifts) & 1
    bits = bits.reshape(-1)[: count * nbits].reshape(count, nbits)
    weights = torch.tensor([1 << i for i in range(nbits)], dtype=torch.int32)
    return (bits * weights).sum(dim=1)


def scatter_nonzero(nonzero_data: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Dense tensor of ``mask``'s shape: ``nonzero_data`` where the mask is set (row-major order), else 0."""
    keep = mask != 0
    n_set = int(keep.sum())
    if n_set != nonzero_data.numel():
        raise ValueError(
            f"sparse mask has {n_set} set bits but nonzero_data has {nonzero_data.numel()} values"
        )
    out = torch.zeros(keep.shape, dtype=nonzero_data.dtype)
    out[keep] = nonzero_data.reshape(-1)
    return out


def broadcast_blocks(param: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Expand a per-block parameter (same rank as the data, each dim dividing it) to ``shape``.

    Equivalent to ``np.repeat(param, dim // block_dim, axis)`` on every axis (coremltools' ``repeat_data_as``).
    """
    if param.dim() != len(shape):
        raise ValueError(f"per-block parameter of rank {param.dim()} for data of rank {len(shape)}")
    out = param
    for axis, (dim, blocks) in enumerate(zip(shape, param.shape)):
        if dim % blocks:
            raise ValueError(f"axis {axis}: data size {dim} is not a multiple of {blocks} blocks")
        if blocks != dim:
            out = out.repeat_interleave(dim // blocks, dim=axis)
    return out


def block_ids(shape: torch.Size | tuple[int, ...], blocks: tuple[int, ...]) -> torch.Tensor:
    """Row-major flat block number of every element of ``shape`` split into ``blocks`` blocks per axis."""
    ids = torch.zeros((), dtype=torch.int64)
    for dim, n_blocks in zip(shape, blocks):
        if dim % n_blocks:
            raise ValueError(f"data size {dim} is not a multiple of {n_blocks} blocks")
        coord = torch.arange(dim, dtype=torch.int64) // (dim // n_blocks)
        # NOTE: unsqueeze then broadcast grows ids by one axis per loop: shape (d0, d1, ..., dk).
        ids = ids.unsqueeze(-1) * n_blocks + coord
    return ids


def along_axis(param: torch.Tensor, rank: int, axis: int | None) -> torch.Tensor:
    """A scalar or a vector along ``axis``, reshaped to broadcast against a rank-``rank`` tensor."""
    if param.dim() == rank:
        return param
    if param.numel() == 1:  # a scalar, possibly loaded as shape (1,): broadcasts the same on any axis
        return param.reshape(())
    if axis is None:
        raise ValueError("a vector scale / zero_point needs an axis")
    axis = axis + rank if axis < 0 else axis
    shape = [1] * rank
    shape[axis] = param.numel()
    return param.reshape(shape)


def affine_dequantize(
    data: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor | None, axis: int | None
) -> torch.Tensor:
    """``scale * (data - zero_point)`` with per-tensor or per-axis parameters, computed in float32."""
    values = data.to(torch.float32)
    if zero_point is not None:
        values = values - along_axis(zero_point.to(torch.float32), data.dim(), axis)
    return values * along_axis(scale.to(torch.float32), data.dim(), axis)


def lut_lookup(indices: torch.Tensor, lut: torch.Tensor, vector_axis: int | None) -> torch.Tensor:
    """iOS18 LUT decompression: per-block palettes of shape ``[*blocks, 2**nbits, vector_size]``.

    Each index selects a row of its block's palette; with ``vector_size > 1`` the row's entries land on
    consecutive positions along ``vector_axis`` (which grows by ``vector_size``).
    """
    rank = indices.dim()
    if lut.dim() != rank + 2:
        raise ValueError(f"lut of rank {lut.dim()} for indices of rank {rank}; expected rank {rank + 2}")
    palettes, vector_size = lut.shape[-2], lut.shape[-1]
    ids = block_ids(indices.shape, tuple(lut.shape[:rank]))
    flat_lut = lut.reshape(-1, palettes, vector_size)
    out = flat_lut[ids, indices.to(torch.int64)]  # [*indices.shape, vector_size]
    if vector_size == 1:
        return out.squeeze(-1)
    if vector_axis is None:
        raise ValueError("lut vector_size > 1 needs vector_axis")
    axis = vector_axis + rank if vector_axis < 0 else vector_axis
    out = out.movedim(-1, axis + 1)
    shape = list(indices.shape)
    shape[axis] *= vector_size
    return out.reshape(shape)


def blockwise_shift_scale(
    data: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor | None, fp16: bool = False
) -> torch.Tensor:
    """iOS18 ``scale * (data - offset)`` with one scale (and offset) per block.

    ``fp16``: the output type is fp16, so (as in the reference, which computes in the scale's dtype) the
    difference is rounded to fp16 before scaling. Integer data minus integer offsets is exact either way;
    the rounding only matters for float data with float offsets.
    """
    values = data.to(torch.float32)
    if offset is not None:
        values = values - broadcast_blocks(offset.to(torch.float32), data.shape)
        if fp16:
            values = round_fp16(values)
    return values * broadcast_blocks(scale.to(torch.float32), data.shape)


def _fp16_output(ctx: OpContext | None, index: int) -> bool:
    return ctx is not None and ctx.output_dtypes[index] == "fp16"


# ---------------------------------------------------------------- iOS16


@register("constexpr_affine_dequantize", since="iOS16", attrs={"axis": int_})
def constexpr_affine_dequantize(quantized_data, zero_point, scale, axis):
    return affine_dequantize(quantized_data, scale, zero_point, axis)


@register("constexpr_cast", since="iOS16", attrs={"output_dtype": str_})
def constexpr_cast(source_val, output_dtype):
    # fp16 -> fp32 only (the op's one legal cast): the fp16 value is already held exactly in float32.
    if output_dtype != "fp32":
        raise ValueError(f"constexpr_cast supports output_dtype='fp32' only, got {output_dtype!r}")
    return source_val.to(torch.float32)


@register("constexpr_lut_to_dense", since="iOS16", attrs={"shape": ints})
def constexpr_lut_to_dense_ios16(indices, lut, shape):
    nbits = int(lut.numel()).bit_length() - 1
    count = 1
    for d in shape:
        count *= d
    keys = unpack_bits(indices, nbits, count)
    return lut.reshape(-1)[keys.to(torch.int64)].reshape(shape)


@register("constexpr_sparse_to_dense", since="iOS16", attrs={"shape": ints})
def constexpr_sparse_to_dense_ios16(nonzero_data, mask, shape):
    count = 1
    for d in shape:
        count *= d
    bits = unpack_bits(mask, 1, count)
    return scatter_nonzero(nonzero_data, bits).reshape(shape)


# ---------------------------------------------------------------- iOS18


@register("constexpr_blockwise_shift_scale", since="iOS18")
def constexpr_blockwise_shift_scale(data, scale, offset=None, ctx=None):
    return blockwise_shift_scale(data, scale, offset, fp16=_fp16_output(ctx, 0))


@register("constexpr_lut_to_dense", since="iOS18", attrs={"vector_axis": int_})
def constexpr_lut_to_dense_ios18(indices, lut, vector_axis=None):
    return lut_lookup(indices, lut, vector_axis)


@register("constexpr_sparse_to_dense", since="iOS18")
def constexpr_sparse_to_dense_ios18(nonzero_data, mask):
    return scatter_nonzero(nonzero_data, mask)


@register("constexpr_lut_to_sparse", since="iOS18", attrs={"vector_axis": int_})
def constexpr_lut_to_sparse(indices_mask, indices_nonzero_data, lut, vector_axis=None):
    """Palettized *and* pruned: returns (mask, nonzero values) for a following constexpr_sparse_to_dense."""
    indices = scatter_nonzero(indices_nonzero_data, indices_mask)
    dense = lut_lookup(indices, lut, vector_axis)
    mask = indices_mask
    if lut.shape[-1] > 1 and vector_axis is not None:
        # one index stands for vector_size values, so each mask bit covers as many outputs.
        mask = mask.repeat_interleave(lut.shape[-1], dim=vector_axis)
    return mask, dense[mask != 0]


@register("constexpr_sparse_blockwise_shift_scale", since="iOS18")
def constexpr_sparse_blockwise_shift_scale(data_mask, nonzero_data, scale, offset=None, ctx=None):
    """Quantized *and* pruned: returns (mask, dequantized nonzero values)."""
    data = scatter_nonzero(nonzero_data, data_mask)
    dense = blockwise_shift_scale(data, scale, offset, fp16=_fp16_output(ctx, 1))
    return data_mask, dense[data_mask != 0]
