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
    x: torch.Tensor,
    indices: torch.Tensor,
    axis: int = 0,
    batch_dims: int = 0,
    validate_indices: bool = False,
    negative_wraps: bool = True,
) -> torch.Tensor:
    """``gather`` (batch_dims 0, the embedding lookup) with data-dependent indices."""
    if batch_dims != 0:
        raise CannotLower("batch_dims > 0 uses advanced indexing, which would wrap indices below -size")
    axis = norm_axis(axis, x.dim())
    shape = list(x.shape)
    idx = indices.to(torch.int64)
    if negative_wraps:  # up to iOS16 the reference wraps negative indices once (from iOS17 it refuses them)
        idx = torch.where(idx < 0, idx + shape[axis], idx)
    # index_select refuses whatever is still out of range, negatives included, so no input gets a value
    # the reference would not give
    return torch.index_select(x, axis, idx.reshape(-1)).reshape(
        shape[:axis] + list(idx.shape) + shape[axis + 1 :]
    )


def gather_ios17(
    x: torch.Tensor, indices: torch.Tensor, axis: int = 0, batch_dims: int = 0, validate_indices: bool = False
) -> torch.Tensor:
    """``gather`` from iOS17, where negative indices are out of bounds."""
    return gather(x, indices, axis, batch_dims, negative_wraps=False)


def trace_safe(reference: Callable[..., Any]) -> Callable[..., Any] | None:
    """The trace-safe variant of a reference kernel function, or None.

    Keyed by the kernel *function*, not the op type: one op has a kernel per opset with different semantics
    (gather wraps negative indices up to iOS16 and refuses them from iOS17).
    """
    from devicefit.interp.ops import indexing

    variants = {
        getattr(indexing, "gather", None): gather,
        getattr(indexing, "gather_ios17", None): gather_ios17,
    }
    return variants.get(reference)
