"""The one home for dtype facts: MIL dtype sizes, numpy equivalents and Core ML proto enums.

Numpy only (no torch, no coremltools), so every layer of the pipeline can import it cheaply. Sizes are
given in *bits* per element because Core ML packs sub-byte types (``int4``, ``uint1`` ... ``uint6``, used by
palettization and 4-bit quantization) densely: a tensor of ``n`` such elements takes ``ceil(bits * n / 8)``
bytes.
"""

from __future__ import annotations

import math

import numpy as np

# Bits per element of every MIL (Core ML ML Program) dtype name. ``bool`` is stored as one byte.
MIL_BITS: dict[str, int] = {
    "fp64": 64,
    "fp32": 32,
    "fp16": 16,
    "bf16": 16,
    "int64": 64,
    "uint64": 64,
    "int32": 32,
    "uint32": 32,
    "int16": 16,
    "uint16": 16,
    "int8": 8,
    "uint8": 8,
    "int4": 4,
    "uint4": 4,
    "uint6": 6,
    "uint3": 3,
    "uint2": 2,
    "uint1": 1,
    "bool": 8,
}

FLOAT_TYPES = frozenset({"fp16", "fp32", "fp64", "bf16"})

# The numpy dtype that holds a MIL value exactly. bf16 has no numpy dtype (its values fit float32) and the
# sub-byte types are unpacked to one (u)int8 per element.
MIL_TO_NUMPY: dict[str, np.dtype] = {
    "fp64": np.dtype(np.float64),
    "fp32": np.dtype(np.float32),
    "fp16": np.dtype(np.float16),
    "bf16": np.dtype(np.float32),
    "int64": np.dtype(np.int64),
    "uint64": np.dtype(np.uint64),
    "int32": np.dtype(np.int32),
    "uint32": np.dtype(np.uint32),
    "int16": np.dtype(np.int16),
    "uint16": np.dtype(np.uint16),
    "int8": np.dtype(np.int8),
    "uint8": np.dtype(np.uint8),
    "int4": np.dtype(np.int8),
    "uint4": np.dtype(np.uint8),
    "uint6": np.dtype(np.uint8),
    "uint3": np.dtype(np.uint8),
    "uint2": np.dtype(np.uint8),
    "uint1": np.dtype(np.uint8),
    "bool": np.dtype(np.bool_),
}

# numpy dtype -> MIL name (the inverse of MIL_TO_NUMPY on the types that map one to one).
NUMPY_TO_MIL: dict[np.dtype, str] = {
    np.dtype(np.float64): "fp64",
    np.dtype(np.float32): "fp32",
    np.dtype(np.float16): "fp16",
    np.dtype(np.int64): "int64",
    np.dtype(np.uint64): "uint64",
    np.dtype(np.int32): "int32",
    np.dtype(np.uint32): "uint32",
    np.dtype(np.int16): "int16",
    np.dtype(np.uint16): "uint16",
    np.dtype(np.int8): "int8",
    np.dtype(np.uint8): "uint8",
    np.dtype(np.bool_): "bool",
}

# Core ML model proto ``ArrayFeatureType.ArrayDataType`` (coremltools/proto/FeatureTypes.proto) -> MIL name.
# The enum value encodes the kind in its high bits (0x10000 float, 0x20000 int) and the width in its low bits.
PROTO_ARRAY_FLOAT32 = 65568
PROTO_ARRAY_DOUBLE = 65600
PROTO_ARRAY_FLOAT16 = 65552
PROTO_ARRAY_INT32 = 131104
PROTO_ARRAY_INT8 = 131080
PROTO_ARRAY_TO_MIL: dict[int, str] = {
    PROTO_ARRAY_FLOAT32: "fp32",
    PROTO_ARRAY_DOUBLE: "fp64",
    PROTO_ARRAY_FLOAT16: "fp16",
    PROTO_ARRAY_INT32: "int32",
    PROTO_ARRAY_INT8: "int8",
}
PROTO_ARRAY_TO_NUMPY: dict[int, np.dtype] = {k: MIL_TO_NUMPY[v] for k, v in PROTO_ARRAY_TO_MIL.items()}


def bits_per_element(mil_dtype: str) -> int:
    """Bits one element of ``mil_dtype`` takes when stored.

    Raises:
        KeyError: for a name that is not a MIL tensor dtype.
    """
    return MIL_BITS[mil_dtype]


def bytes_per_element(mil_dtype: str | None, default: float = 4.0) -> float:
    """Bytes per element of ``mil_dtype`` (fractional for sub-byte types); ``default`` for unknown names."""
    bits = MIL_BITS.get(mil_dtype or "")
    return bits / 8 if bits is not None else default


def tensor_bytes(mil_dtype: str | None, numel: int, default_bits: int = 32) -> int:
    """Bytes a densely packed tensor of ``numel`` elements of ``mil_dtype`` takes (sub-byte types round up)."""
    bits = MIL_BITS.get(mil_dtype or "", default_bits)
    return math.ceil(bits * int(numel) / 8)


def numpy_dtype(mil_dtype: str) -> np.dtype:
    """The numpy dtype holding values of ``mil_dtype`` (see :data:`MIL_TO_NUMPY`).

    Raises:
        KeyError: for a name that is not a MIL tensor dtype.
    """
    return MIL_TO_NUMPY[mil_dtype]


def mil_dtype(dtype: np.dtype | type, default: str | None = None) -> str | None:
    """The MIL name of a numpy dtype, or ``default`` when it has none (e.g. object, complex)."""
    try:
        return NUMPY_TO_MIL.get(np.dtype(dtype).newbyteorder("="), default)
    except TypeError:
        return default


def proto_array_mil(data_type: int) -> str | None:
    """MIL name of a proto ``ArrayDataType`` enum value, None for INVALID_ARRAY_DATA_TYPE or unknown values."""
    return PROTO_ARRAY_TO_MIL.get(int(data_type))


def proto_array_numpy(data_type: int) -> np.dtype | None:
    """numpy dtype of a proto ``ArrayDataType`` enum value, None for INVALID_ARRAY_DATA_TYPE or unknown."""
    return PROTO_ARRAY_TO_NUMPY.get(int(data_type))
