"""Checking and converting what a caller feeds a Program: inputs and states, against the program.

Inputs are validated against the *program's* declared types and shapes (the description may disagree
with the program in a corrupted or hand-edited package; the program is what runs).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from devicefit.errors import InputError
from devicefit.interp import dtypes
from devicefit.interp.plan import TensorSpec


def validate_input(spec: TensorSpec, value: Any, precision: str) -> torch.Tensor:
    arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if arr.dtype == object:
        raise InputError(f"input {spec.name!r} is not a numeric array; expected {spec.describe()}")
    want_float = dtypes.is_float(spec.dtype)
    if want_float and arr.dtype.kind not in "fiu":
        raise InputError(f"input {spec.name!r} has dtype {arr.dtype}, expected {spec.describe()}")
    if not want_float and spec.dtype is not None and arr.dtype.kind not in "iub":
        raise InputError(
            f"input {spec.name!r} has dtype {arr.dtype}, expected integer input {spec.describe()}"
        )
    shape = tuple(arr.shape)
    ok, why = shape_allowed(spec, shape)
    if not ok:
        raise InputError(f"input {spec.name!r} has shape {'x'.join(map(str, shape)) or 'scalar'}; {why}")
    tensor = dtypes.to_held_tensor(arr, spec.dtype if spec.dtype in dtypes.HELD_TORCH else None)
    if precision == "fp16" and spec.dtype == "fp16":
        tensor = dtypes.round_fp16(tensor)
    return tensor


def shape_allowed(spec: TensorSpec, shape: tuple[int, ...]) -> tuple[bool, str]:
    if spec.enumerated_shapes:
        if shape in spec.enumerated_shapes:
            return True, ""
        allowed = ", ".join("x".join(map(str, s)) for s in spec.enumerated_shapes)
        return False, f"the model accepts only the enumerated shapes {allowed}"
    if spec.shape_range:
        if len(shape) != len(spec.shape_range):
            return False, f"expected rank {len(spec.shape_range)} ({spec.describe()})"
        for axis, (dim, (lo, hi)) in enumerate(zip(shape, spec.shape_range)):
            if dim < lo or (hi >= 0 and dim > hi):
                bound = f"{lo}..{'inf' if hi < 0 else hi}"
                return False, f"axis {axis} is {dim}, outside the declared range {bound} ({spec.describe()})"
        return True, ""
    if spec.shape is None:
        return True, ""
    if len(shape) != len(spec.shape) or any(a != b for a, b in zip(shape, spec.shape)):
        return False, f"expected {spec.describe()}"
    return True, ""
