"""Checking and converting what a caller feeds a Program: inputs and states, against the program.

Inputs are validated against the *program's* declared types and shapes (the description may disagree
with the program in a corrupted or hand-edited package; the program is what runs).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from devicefit.dtypes import MIL_TO_NUMPY
from devicefit.errors import InputError, first_line
from devicefit.interp import dtypes
from devicefit.interp.plan import TensorSpec

# The limit is a sources-stage fact (generated example inputs are bounded there too); re-exported here.
from devicefit.sources.spec import DEFAULT_MAX_INPUT_BYTES, MAX_INPUT_BYTES_ENV, max_input_bytes

__all__ = ["DEFAULT_MAX_INPUT_BYTES", "MAX_INPUT_BYTES_ENV", "check_generated_size", "max_input_bytes"]


def check_generated_size(spec: TensorSpec, shape: tuple[int, ...], max_bytes: int | None = None) -> None:
    """Refuse to generate a random input larger than the limit (see :func:`max_input_bytes`).

    Raises:
        InputError: naming the input, its size, and how to raise the limit or feed the input instead.
    """
    limit = max_input_bytes(max_bytes)
    # NOTE: math.prod over Python ints: a declared 2**40 x 2**40 shape must not wrap around to a small size.
    nbytes = math.prod(int(d) for d in shape) * (1 if spec.dtype == "bool" else 4)
    if nbytes > limit:
        raise InputError(
            f"input {spec.name!r} is declared {'x'.join(map(str, shape))} ({nbytes / 2**20:.0f} MiB), over the "
            f"{limit / 2**20:.0f} MiB limit for generated inputs; feed it yourself (--input {spec.name}=FILE.npy), "
            f"or raise the limit (--max-input-mb, {MAX_INPUT_BYTES_ENV}, or example_inputs(max_bytes=...))"
        )


def input_array(spec: TensorSpec, value: Any, what: str = "input") -> np.ndarray:
    """A caller's value as a native-byte-order numpy array of a numeric dtype.

    Accepts numpy arrays (either byte order), torch tensors (bfloat16 and other dtypes numpy lacks are
    widened to float32), scalars and rectangular nested lists.

    Raises:
        InputError: a ragged list, an object / string / complex array, or a value numpy cannot read.
    """
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        if tensor.is_floating_point() and tensor.dtype not in (torch.float16, torch.float32, torch.float64):
            tensor = tensor.float()  # bfloat16, float8: numpy has no such dtype; float32 holds them exactly
        try:
            arr = tensor.numpy()
        except (TypeError, RuntimeError) as e:
            raise InputError(
                f"{what} {spec.name!r} is a torch {tensor.dtype} tensor, which devicefit cannot read: "
                f"{first_line(e)}; pass {spec.describe()}"
            ) from None
    else:
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as e:
            raise InputError(
                f"{what} {spec.name!r} is not a rectangular numeric array ({first_line(e)}); expected {spec.describe()}"
            ) from None
    if arr.dtype.kind not in "biuf":
        raise InputError(
            f"{what} {spec.name!r} is not a numeric array (dtype {arr.dtype}); expected {spec.describe()}"
        )
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))  # big-endian data (e.g. from another tool's .npy)
    return arr


def validate_input(spec: TensorSpec, value: Any, precision: str, leading_free: bool = False) -> torch.Tensor:
    """``value`` checked against the program's declared input ``spec`` and converted to its held tensor.

    ``leading_free`` (internal, for :func:`devicefit.interp.stacked.run_stacked`): any size on axis 0, the other
    axes as declared.

    Raises:
        InputError: wrong kind, shape, or integer values that do not fit the declared integer type.
    """
    arr = input_array(spec, value)
    want_float = dtypes.is_float(spec.dtype)
    if want_float and arr.dtype.kind not in "fiu":
        raise InputError(f"input {spec.name!r} has dtype {arr.dtype}, expected {spec.describe()}")
    if not want_float and spec.dtype is not None and arr.dtype.kind not in "iub":
        raise InputError(
            f"input {spec.name!r} has dtype {arr.dtype}, expected integer input {spec.describe()}"
        )
    shape = tuple(arr.shape)
    ok, why = shape_allowed(spec, shape, leading_free)
    if not ok:
        raise InputError(f"input {spec.name!r} has shape {'x'.join(map(str, shape)) or 'scalar'}; {why}")
    if not want_float and spec.dtype in MIL_TO_NUMPY:
        arr = _fit_integers(spec, arr)
    tensor = dtypes.to_held_tensor(arr, spec.dtype if spec.dtype in dtypes.HELD_TORCH else None)
    if precision == "fp16" and spec.dtype == "fp16":
        tensor = dtypes.round_fp16(tensor)
    return tensor


def _fit_integers(spec: TensorSpec, arr: np.ndarray) -> np.ndarray:
    """``arr`` in the declared integer type, refusing values it cannot hold (never a silent wrap)."""
    target = MIL_TO_NUMPY[str(spec.dtype)]
    if arr.dtype == target or arr.size == 0:
        return arr
    lo, hi = (0, 1) if target == np.bool_ else (np.iinfo(target).min, np.iinfo(target).max)
    low, high = int(arr.min()), int(arr.max())
    if low < lo or high > hi:
        bad = low if low < lo else high
        raise InputError(
            f"input {spec.name!r} holds {bad}, which does not fit the model's {spec.dtype} ({lo}..{hi}); "
            f"the model would see a different number. Pass values in range (as {target.name})"
        )
    return arr.astype(target)


def shape_allowed(spec: TensorSpec, shape: tuple[int, ...], leading_free: bool = False) -> tuple[bool, str]:
    if leading_free and shape:
        # Samples stacked on axis 0: the shape is allowed when, with axis 0 at a declared size, it would be.
        leads = {s[0] for s in spec.enumerated_shapes or () if s}
        if spec.shape_range:
            leads.add(spec.shape_range[0][0])
        if spec.shape:
            leads.add(spec.shape[0])
        for lead in sorted(leads) or [shape[0]]:
            ok, why = shape_allowed(spec, (lead, *shape[1:]))
            if ok:
                return ok, why
        return ok, why
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
