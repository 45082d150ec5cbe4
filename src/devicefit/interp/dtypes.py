"""MIL dtype names <-> torch / numpy dtypes used by the interpreter.

Values of every floating type are *held* as float32 tensors: fp16 emulation rounds them through float16
after each op (see ``run.py``), so kernels only ever see float32 and never mix precisions.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from devicefit.dtypes import FLOAT_TYPES, NUMPY_TO_MIL

__all__ = [
    "FLOAT_TYPES",
    "HELD_TORCH",
    "held_dtype",
    "is_float",
    "numpy_to_mil",
    "round_fp16",
    "round_fp16_output",
    "to_held_tensor",
]

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
    # NOTE: a view reversed along a length-1 axis is C-contiguous to numpy (ascontiguousarray keeps it) but
    # has a negative stride, which torch.from_numpy refuses: copy it.
    shape = arr.shape
    arr = np.ascontiguousarray(arr)
    if any(s < 0 for s in arr.strides):
        arr = arr.copy()
    tensor = torch.from_numpy(arr).reshape(shape)
    return tensor.to(target) if tensor.dtype != target else tensor


def numpy_to_mil(dtype: np.dtype) -> str:
    """MIL name of a numpy dtype the interpreter can hold; anything else is treated as fp32."""
    name = NUMPY_TO_MIL.get(np.dtype(dtype), "fp32")
    # NOTE: uint64 has no held torch type; callers range-check such feeds before converting.
    return "int64" if name == "uint64" else name


def round_fp16(t: torch.Tensor) -> torch.Tensor:
    """Round a float32 tensor to the nearest float16 value (inf beyond 65504, subnormals kept)."""
    return t.to(torch.float16).to(torch.float32)


# A kernel output at least this large is rounded in place, in chunks: ``round_fp16`` would hold the float32
# original, a float16 copy and a new float32 tensor at once (2.5x the value), which is what set `check`'s
# peak memory on large activations (issue 12). Smaller values take the plain path (no aliasing checks).
IN_PLACE_MIN_ELEMENTS = 1 << 20
_ROUND_CHUNK = 1 << 22


def round_fp16_output(t: torch.Tensor, inputs: Iterable[object]) -> torch.Tensor:
    """:func:`round_fp16` for a value a kernel just returned; same values, less memory when large.

    A large, contiguous float32 output that shares no memory with ``inputs`` (every tensor the kernel was
    given: a view or an identity would alias one) is rounded in place, chunk by chunk; anything else is
    rounded into a new tensor, so a kernel's inputs (constants included) are never modified.
    """
    if (
        t.numel() < IN_PLACE_MIN_ELEMENTS
        or t.dtype != torch.float32
        or t._base is not None
        or not t.is_contiguous()
    ):
        return round_fp16(t)
    ptr = t.untyped_storage().data_ptr()
    for value in inputs:
        if isinstance(value, torch.Tensor) and value.untyped_storage().data_ptr() == ptr:
            return round_fp16(t)
        if isinstance(value, (list, tuple)) and any(
            isinstance(v, torch.Tensor) and v.untyped_storage().data_ptr() == ptr for v in value
        ):
            return round_fp16(t)
    flat = t.view(-1)
    for start in range(0, flat.numel(), _ROUND_CHUNK):
        part = flat[start : start + _ROUND_CHUNK]
        part.copy_(part.to(torch.float16))
    return t
