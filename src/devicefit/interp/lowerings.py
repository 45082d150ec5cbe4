"""Trace-safe variants of kernels whose reference version reads input data into Python.

The reference kernel stays the spec (``interp/ops``); a variant here computes the same values for every input
the reference accepts, without converting tensor data to Python values, so a trace of it holds for any input
of the same shape. Where the reference raises on bad data (an index out of range), the variant must raise
too (an aten bounds check); the compiled path then reruns the reference, which raises its own clear error.
Each variant is tested against its reference kernel (tests/interp/test_compiled.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from devicefit.interp.ops._util import norm_axis


class CannotLower(Exception):
    """This call's attributes are outside what the variant handles."""


def gather(
    x: torch.Tensor, indices: torch.Tensor, axis: int = 0, batch_dims: int = 0, validate_indices: bool = False
) -> torch.Tensor:
    """``gather`` (batch_dims 0, the embedding lookup) with data-dependent indices."""
    if batch_dims != 0:
        raise CannotLower("batch_dims > 0 uses advanced indexing, which would wrap indices below -size")
    axis = norm_axis(axis, x.dim())
    shape = list(x.shape)
    idx = indices.to(torch.int64)
    # the reference wraps negative indices once and refuses the rest; index_select refuses what is still
    # out of range (negative included), so no input gets a value the reference would not give
    idx = torch.where(idx < 0, idx + shape[axis], idx)
    return torch.index_select(x, axis, idx.reshape(-1)).reshape(
        shape[:axis] + list(idx.shape) + shape[axis + 1 :]
    )


# MIL op type -> trace-safe variant (same parameters as the reference kernel)
TRACE_SAFE: dict[str, Callable[..., Any]] = {"gather": gather}
