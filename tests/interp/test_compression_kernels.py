"""Each compression kernel on its own against coremltools' pure decompress / quantize helpers.

The references are the ``decompress`` staticmethods of coremltools' op definitions and the functions in
``coremltools.optimize._utils`` they call: plain numpy, no model needed. Kernels are fetched through the
registry at a given opset, so these tests also check which version each opset gets.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devicefit.interp.ops.compression import unpack_bits
from devicefit.interp.registry import OpContext, get_kernel

RNG = np.random.default_rng(0)


def kernel(op_type: str, opset: int):
    k = get_kernel(op_type, opset)
    assert k is not None, f"no kernel for {op_type} at iOS{opset}"
    return k.fn


def t(a: np.ndarray) -> torch.Tensor:
    """A numpy array as the interpreter holds it (sub-byte ints as int8 / uint8, floats as float32)."""
    a = np.asarray(a)
    return torch.from_numpy(a.astype(np.float32) if a.dtype == np.float16 else a.copy())


def ctx_with(*out_dtypes: str) -> OpContext:
    return OpContext(
        "op", "op", [f"o{i}" for i in range(len(out_dtypes))], list(out_dtypes), [None] * len(out_dtypes)
    )


def random_mask(shape: tuple[int, ...], density: float = 0.5) -> np.ndarray:
    return (RNG.random(shape) < density).astype(np.uint8)


@pytest.fixture(scope="module")
def ref():
    from coremltools.converters.mil.mil.ops.defs.iOS16 import constexpr_ops as ios16
    from coremltools.converters.mil.mil.ops.defs.iOS18 import compression as ios18
    from coremltools.optimize import _utils

    return type("Ref", (), {"ios16": ios16, "ios18": ios18, "utils": _utils})


# ---------------------------------------------------------------- bit packing (iOS16 layout)


@pytest.mark.parametrize("nbits", [1, 2, 3, 4, 6, 8])
@pytest.mark.parametrize("count", [1, 5, 37, 64])
def test_unpack_bits_matches_coremltools(ref, nbits, count):
    values = RNG.integers(0, 2**nbits, count).astype(np.uint8)
    packed = ref.utils.pack_elements_into_bits(values, nbits)
    assert packed.size == int(np.ceil(count * nbits / 8))
    out = unpack_bits(t(packed), nbits, count)
    np.testing.assert_array_equal(out.numpy(), values)


# ---------------------------------------------------------------- iOS16 ops


@pytest.mark.parametrize("shape", [(5,), (4, 6), (3, 2, 5)])
@pytest.mark.parametrize("nbits", [1, 2, 4, 6, 8])
@pytest.mark.parametrize("lut_dtype", [np.float32, np.float16, np.int8, np.uint8])
def test_lut_to_dense_ios16(ref, shape, nbits, lut_dtype):
    if np.issubdtype(lut_dtype, np.integer):
        info = np.iinfo(lut_dtype)
        lut = RNG.integers(info.min, info.max, 2**nbits).astype(lut_dtype)
    else:
        lut = RNG.standard_normal(2**nbits).astype(lut_dtype)
    keys = RNG.integers(0, 2**nbits, int(np.prod(shape))).astype(np.uint8)
    packed = ref.utils.pack_elements_into_bits(keys, nbits)
    expected = ref.ios16.constexpr_lut_to_dense.decompress(lut, packed, np.array(shape, np.uint32))
    out = kernel("constexpr_lut_to_dense", 16)(indices=t(packed), lut=t(lut), shape=list(shape))
    assert tuple(out.shape) == shape
    np.testing.assert_array_equal(out.numpy(), expected.astype(out.numpy().dtype))


@pytest.mark.parametrize("shape", [(7,), (4, 6), (2, 3, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.int8])
def test_sparse_to_dense_ios16(ref, shape, dtype):
    mask_bits = random_mask(shape).reshape(-1)
    packed = np.packbits(mask_bits, bitorder="little")
    nonzero = (RNG.standard_normal(int(mask_bits.sum())) * 50).astype(dtype)
    expected = ref.ios16.constexpr_sparse_to_dense.decompress(nonzero, packed, np.array(shape, np.uint32))
    out = kernel("constexpr_sparse_to_dense", 17)(nonzero_data=t(nonzero), mask=t(packed), shape=list(shape))
    np.testing.assert_array_equal(out.numpy(), expected)
    assert int((out != 0).sum()) <= int(mask_bits.sum())


@pytest.mark.parametrize(
    ("shape", "axis"), [((6,), 0), ((4, 3), 0), ((4, 3), 1), ((2, 3, 4), -1), ((2, 3, 4, 2), 1)]
)
@pytest.mark.parametrize("data_dtype", [np.int8, np.uint8])
@pytest.mark.parametrize("per_axis", [False, True])
@pytest.mark.parametrize("zp_kind", ["int", "float"])
def test_affine_dequantize(ref, shape, axis, data_dtype, per_axis, zp_kind):
    info = np.iinfo(data_dtype)
    data = RNG.integers(info.min, info.max + 1, shape).astype(data_dtype)
    n = shape[axis] if per_axis else None
    scale = (RNG.random(n) + 0.1).astype(np.float32) if n else np.float32(0.03)
    if zp_kind == "int":
        zp = RNG.integers(info.min, info.max + 1, n).astype(data_dtype) if n else data_dtype(3)
    else:
        zp = RNG.standard_normal(n).astype(np.float32) if n else np.float32(-1.5)
    expected = ref.ios16.constexpr_affine_dequantize.decompress(data, np.asarray(zp), np.asarray(scale), axis)
    out = kernel("constexpr_affine_dequantize", 18)(
        quantized_data=t(data), zero_point=t(np.asarray(zp)), scale=t(np.asarray(scale)), axis=axis
    )
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6, atol=0)


def test_affine_dequantize_accepts_scalar_loaded_as_length_one_vector(ref):
    data = RNG.integers(-128, 128, (3, 4)).astype(np.int8)
    expected = ref.ios16.constexpr_affine_dequantize.decompress(data, np.int8(2), np.float32(0.5), 1)
    out = kernel("constexpr_affine_dequantize", 16)(
        quantized_data=t(data),
        zero_point=t(np.array([2], np.int8)),
        scale=t(np.array([0.5], np.float32)),
        axis=1,
    )
    np.testing.assert_array_equal(out.numpy(), expected)


def test_constexpr_cast_keeps_fp16_values_exactly():
    values = RNG.standard_normal(20).astype(np.float16)
    out = kernel("constexpr_cast", 16)(source_val=t(values), output_dtype="fp32")
    assert out.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy(), values.astype(np.float32))
    with pytest.raises(ValueError, match="fp32"):
        kernel("constexpr_cast", 18)(source_val=t(values), output_dtype="int32")


# ---------------------------------------------------------------- iOS18 ops


BLOCKWISE_CASES = [
    ((8,), (1,)),
    ((8,), (8,)),
    ((6, 8), (6, 1)),  # per channel
    ((6, 8), (6, 2)),  # per block of 4 along the input axis
    ((6, 8), (3, 4)),  # blocks on both axes
    ((4, 6, 3, 3), (4, 2, 1, 1)),  # conv weight, blocks of 3 input channels
]


@pytest.mark.parametrize(("shape", "scale_shape"), BLOCKWISE_CASES)
@pytest.mark.parametrize("src", ["int4", "uint4", "int8", "uint8"])
@pytest.mark.parametrize("with_offset", [False, True])
def test_blockwise_shift_scale(ref, shape, scale_shape, src, with_offset):
    lo, hi, np_dtype = {
        "int4": (-8, 7, np.int8),
        "uint4": (0, 15, np.uint8),
        "int8": (-128, 127, np.int8),
        "uint8": (0, 255, np.uint8),
    }[src]
    data = RNG.integers(lo, hi + 1, shape).astype(np_dtype)
    scale = (RNG.random(scale_shape) * 0.1 + 0.01).astype(np.float32)
    offset = RNG.integers(lo, hi + 1, scale_shape).astype(np_dtype) if with_offset else None
    expected = ref.ios18.constexpr_blockwise_shift_scale.decompress(data, scale, offset)
    out = kernel("constexpr_blockwise_shift_scale", 18)(
        data=t(data), scale=t(scale), offset=None if offset is None else t(offset)
    )
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6, atol=0)


def test_blockwise_shift_scale_fp16_rounds_like_the_reference(ref):
    # Float data with a float offset: the reference computes data - offset in fp16 before scaling.
    data = (RNG.standard_normal((16, 8)) * 3).astype(np.float16)
    offset = RNG.standard_normal((16, 2)).astype(np.float16)
    scale = (RNG.random((16, 2)) + 0.5).astype(np.float16)
    expected = ref.ios18.constexpr_blockwise_shift_scale.decompress(data, scale, offset)
    assert expected.dtype == np.float16
    out = kernel("constexpr_blockwise_shift_scale", 18)(
        data=t(data), scale=t(scale), offset=t(offset), ctx=ctx_with("fp16")
    )
    np.testing.assert_array_equal(out.numpy().astype(np.float16), expected)


def test_blockwise_shift_scale_rejects_non_dividing_blocks():
    with pytest.raises(ValueError, match="multiple"):
        kernel("constexpr_blockwise_shift_scale", 18)(
            data=torch.zeros(6, 8, dtype=torch.int8), scale=torch.ones(4, 1)
        )


def make_lut(blocks: tuple[int, ...], nbits: int, vector_size: int, dtype) -> np.ndarray:
    shape = (*blocks, 2**nbits, vector_size)
    if np.issubdtype(dtype, np.integer):
        return RNG.integers(-100, 100, shape).astype(dtype)
    return RNG.standard_normal(shape).astype(dtype)


LUT_CASES = [
    # indices shape, lut blocks, vector_size, vector_axis
    ((8,), (1,), 1, None),
    ((6, 8), (1, 1), 1, None),  # per tensor
    ((6, 8), (6, 1), 1, None),  # per channel
    ((6, 8), (3, 1), 1, None),  # grouped channels
    ((6, 8), (2, 4), 1, None),  # blocks on both axes
    ((4, 3, 3, 3), (2, 1, 1, 1), 1, None),  # conv weight
    ((3, 8), (1, 1), 2, 0),  # vector palettes along the output axis
    ((6, 4), (3, 1), 4, 1),
    ((2, 3, 4), (2, 1, 1), 2, -1),
]


@pytest.mark.parametrize(("shape", "blocks", "vector_size", "vector_axis"), LUT_CASES)
@pytest.mark.parametrize("nbits", [1, 3, 4, 8])
def test_lut_to_dense_ios18(ref, shape, blocks, vector_size, vector_axis, nbits):
    indices = RNG.integers(0, 2**nbits, shape).astype(np.uint8)
    lut = make_lut(blocks, nbits, vector_size, np.float32)
    expected = ref.ios18.constexpr_lut_to_dense.decompress(indices, lut, vector_axis)
    out = kernel("constexpr_lut_to_dense", 18)(indices=t(indices), lut=t(lut), vector_axis=vector_axis)
    assert tuple(out.shape) == expected.shape
    np.testing.assert_array_equal(out.numpy(), expected)


def test_lut_to_dense_ios18_int8_lut_keeps_dtype(ref):
    indices = RNG.integers(0, 16, (4, 8)).astype(np.uint8)
    lut = make_lut((2, 1), 4, 1, np.int8)
    out = kernel("constexpr_lut_to_dense", 19)(indices=t(indices), lut=t(lut))
    assert out.dtype == torch.int8
    np.testing.assert_array_equal(
        out.numpy(), ref.ios18.constexpr_lut_to_dense.decompress(indices, lut, None)
    )


def test_lut_to_dense_versions_differ():
    """The iOS16 kernel takes packed bytes + shape; iOS18 takes typed indices; iOS17 still gets iOS16's."""
    k16, k17, k18 = (get_kernel("constexpr_lut_to_dense", v) for v in (16, 17, 18))
    assert k16 is not None and k17 is not None and k18 is not None
    assert k16 is k17 and k18 is not k16
    assert "shape" in k16.params and "vector_axis" in k18.params
    assert get_kernel("constexpr_blockwise_shift_scale", 17) is None


@pytest.mark.parametrize("shape", [(9,), (4, 6), (2, 3, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.uint8])
def test_sparse_to_dense_ios18(ref, shape, dtype):
    mask = random_mask(shape, 0.4)
    nonzero = RNG.integers(1, 100, int(mask.sum())).astype(dtype)
    expected = ref.ios18.constexpr_sparse_to_dense.decompress(nonzero, mask)
    out = kernel("constexpr_sparse_to_dense", 18)(nonzero_data=t(nonzero), mask=t(mask))
    np.testing.assert_array_equal(out.numpy(), expected)


def test_sparse_to_dense_rejects_wrong_count():
    mask = torch.tensor([1, 0, 1, 1], dtype=torch.uint8)
    with pytest.raises(ValueError, match="3 set bits"):
        kernel("constexpr_sparse_to_dense", 18)(nonzero_data=torch.ones(2), mask=mask)


@pytest.mark.parametrize(("shape", "blocks", "vector_size", "vector_axis"), LUT_CASES)
def test_lut_to_sparse(ref, shape, blocks, vector_size, vector_axis):
    nbits = 4
    mask = random_mask(shape, 0.5)
    nonzero_idx = RNG.integers(0, 2**nbits, int(mask.sum())).astype(np.uint8)
    lut = make_lut(blocks, nbits, vector_size, np.float32)
    exp_mask, exp_values = ref.ios18.constexpr_lut_to_sparse.decompress(mask, nonzero_idx, lut, vector_axis)
    out_mask, out_values = kernel("constexpr_lut_to_sparse", 18)(
        indices_mask=t(mask), indices_nonzero_data=t(nonzero_idx), lut=t(lut), vector_axis=vector_axis
    )
    np.testing.assert_array_equal(out_mask.numpy(), exp_mask)
    np.testing.assert_array_equal(out_values.numpy(), exp_values)
    # and the pair decompresses to the palettized tensor with the pruned entries zeroed
    dense = kernel("constexpr_sparse_to_dense", 18)(nonzero_data=out_values, mask=out_mask)
    assert int((dense != 0).sum()) <= int(exp_mask.sum())


@pytest.mark.parametrize(("shape", "scale_shape"), BLOCKWISE_CASES)
@pytest.mark.parametrize("with_offset", [False, True])
def test_sparse_blockwise_shift_scale(ref, shape, scale_shape, with_offset):
    mask = random_mask(shape, 0.5)
    nonzero = RNG.integers(-8, 8, int(mask.sum())).astype(np.int8)
    scale = (RNG.random(scale_shape) + 0.1).astype(np.float32)
    offset = RNG.integers(-8, 8, scale_shape).astype(np.int8) if with_offset else None
    exp_mask, exp_values = ref.ios18.constexpr_sparse_blockwise_shift_scale.decompress(
        mask, nonzero, scale, offset
    )
    out_mask, out_values = kernel("constexpr_sparse_blockwise_shift_scale", 18)(
        data_mask=t(mask),
        nonzero_data=t(nonzero),
        scale=t(scale),
        offset=None if offset is None else t(offset),
    )
    np.testing.assert_array_equal(out_mask.numpy(), exp_mask)
    np.testing.assert_allclose(out_values.numpy(), exp_values, rtol=1e-6, atol=0)


# ---------------------------------------------------------------- iOS17 activation quantization


@pytest.mark.parametrize("out_dtype", ["int8", "uint8"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("with_zp", [False, True])
def test_quantize_dequantize(ref, out_dtype, axis, with_zp):
    shape = (3, 4, 5)
    x = (RNG.standard_normal(shape) * 4).astype(np.float32)
    n = None if axis is None else shape[axis]
    scale = (RNG.random(n) * 0.05 + 0.01).astype(np.float32) if n else np.float32(0.04)
    np_dtype = np.int8 if out_dtype == "int8" else np.uint8
    zp = None
    if with_zp:
        lo, hi = (-20, 20) if out_dtype == "int8" else (100, 150)
        zp = RNG.integers(lo, hi, n).astype(np_dtype) if n else np_dtype(7)
    # exact .5 ties: round half to even, as numpy does
    x.reshape(-1)[:4] = np.asarray(scale).reshape(-1)[0] * np.array([0.5, 1.5, 2.5, -0.5], np.float32)
    r_scale = ref.utils.promote_rank_to_same_as_data(np.asarray(scale), x, axis)
    r_zp = None if zp is None else ref.utils.promote_rank_to_same_as_data(np.asarray(zp), x, axis)
    expected_q = ref.utils.quantize_by_scale_and_zp(x, r_scale, r_zp, out_dtype)
    q = kernel("quantize", 17)(
        input=t(x),
        scale=t(np.asarray(scale)),
        zero_point=None if zp is None else t(np.asarray(zp)),
        axis=axis,
        output_dtype=out_dtype,
    )
    assert q.dtype == (torch.int8 if out_dtype == "int8" else torch.uint8)
    np.testing.assert_array_equal(q.numpy(), expected_q)
    # clipping happened somewhere (x spans well beyond the range), so the test sees saturation too
    info = np.iinfo(np_dtype)
    assert (expected_q == info.max).any() or (expected_q == info.min).any()
    expected_d = ref.utils.dequantize_by_scale_and_zp(expected_q, r_scale, r_zp)
    d = kernel("dequantize", 18)(
        input=q, scale=t(np.asarray(scale)), zero_point=None if zp is None else t(np.asarray(zp)), axis=axis
    )
    np.testing.assert_allclose(d.numpy(), expected_d, rtol=1e-6, atol=0)


def test_quantize_not_before_ios17():
    assert get_kernel("quantize", 16) is None and get_kernel("dequantize", 16) is None
    with pytest.raises(ValueError, match="int8 or uint8"):
        kernel("quantize", 17)(input=torch.ones(2), scale=torch.tensor(1.0), output_dtype="int32")
