"""MIL dtype names <-> torch / numpy dtypes used by the interpreter.

Values of every floating type are *held* as float32 tensors: fp16 emulation rounds them through float16
after each op (see ``run.py``), so kernels only ever see float32 and never mix precisions.
"""

from __future__ import annotations

import numpy as np
import torch

FLOAT_TYPES = frozenset({"fp16", "fp32", "fp64", "bf16"})

# How a value of each MIL type is held while the program runs.
HELD_TORCH: dict[str, torch.dtype] = {
    "fp16": torch.float32,
    "bf16": torch.float32,
    "fp32": torch.float32,
    "fp64": torch.float64,
    "int64": torch.int64,
    "int32": torch.int32,
    "uint32": torch.int64,
    "int16": torch.int16,
    "uint16": torch.int32,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "int4": torch.int8,
    "uint4": torch.uint8,
    "uint6": torch.uint8,
    "uint3": torch.uint8,
    "uint2": torch.uint8,
    "uint1": torch.uint8,
    "bool": torch.bool,
}

# The numpy dtype a value of each MIL type is returned as (fp16 only when emulating fp16).
RETURN_NUMPY: dict[str, type] = {
    "fp16": np.float16,
    "fp32": np.float32,
    "fp64": np.float64,
    "int64": np.int64,
    "int32": np.int32,
    "uint32": np.uint32,
    "int16": np.int16,
    "uint16": np.uint16,
    "int8": np.int8,
    "uint8": np.uint8,
    "bool": np.bool_,
}

# Proto ArrayFeatureType.ArrayDataType enum values -> MIL names (for model descriptions).
PROTO_ARRAY_DTYPE = {65568: "fp32", 65600: "fp64", 65552: "fp16", 131104: "int32", 131080: "int8"}


def held_dtype(mil_dtype: str) -> torch.dtype:
    """The torch dtype a value of ``mil_dtype`` is held in."""
    try:
        return HELD_TORCH[mil_dtype]
    except KeyError:
        raise TypeError(f"unsupported MIL dtype {mil_dtype!r}") from None


def is_float(mil_dtype: str | None) -> bool:
    return mil_dtype in FLOAT_TYPES


def to_held_tensor(value: object, mil_dtype: str | None) -> torch.Tensor:
    """Convert a numpy array / scalar to the tensor the interpreter holds for ``mil_dtype``."""
    arr = np.asarray(value)
    if mil_dtype is None:
        mil_dtype = numpy_to_mil(arr.dtype)
    target = held_dtype(mil_dtype)
    if arr.dtype == np.float16 or arr.dtype.kind == "f":
        arr = arr.astype(np.float32 if target == torch.float32 else np.float64, copy=False)
    elif arr.dtype == np.uint16:
        arr = arr.astype(np.int32)
    elif arr.dtype == np.uint32:
        arr = arr.astype(np.int64)
    # NOTE: np.ascontiguousarray returns at least rank 1; reshape keeps MIL scalars rank 0.
    tensor = torch.from_numpy(np.ascontiguousarray(arr)).reshape(arr.shape)
    return tensor.to(target) if tensor.dtype != target else tensor


def numpy_to_mil(dtype: np.dtype) -> str:
    table = {
        np.dtype(np.float16): "fp16",
        np.dtype(np.float32): "fp32",
        np.dtype(np.float64): "fp64",
        np.dtype(np.int64): "int64",
        np.dtype(np.int32): "int32",
        np.dtype(np.int16): "int16",
        np.dtype(np.uint16): "uint16",
        np.dtype(np.int8): "int8",
        np.dtype(np.uint8): "uint8",
        np.dtype(np.uint32): "uint32",
        np.dtype(np.bool_): "bool",
    }
    return table.get(np.dtype(dtype), "fp32")


TORCH_TO_NUMPY = {
    torch.float32: np.float32,
    torch.float64: np.float64,
    torch.float16: np.float16,
    torch.int64: np.int64,
    torch.int32: np.int32,
    torch.int16: np.int16,
    torch.int8: np.int8,
    torch.uint8: np.uint8,
    torch.bool: np.bool_,
}


def round_fp16(t: torch.Tensor) -> torch.Tensor:
    """Round a float32 tensor to the nearest float16 value (inf beyond 65504, subnormals kept)."""
    return t.to(torch.float16).to(torch.float32)
