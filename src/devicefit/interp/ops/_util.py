"""Helpers shared by kernels."""

from __future__ import annotations

import torch


def norm_axes(axes: list[int] | None, rank: int) -> list[int]:
    """Negative axes -> positive; None -> all axes."""
    if axes is None:
        return list(range(rank))
    return [a + rank if a < 0 else a for a in axes]


def norm_axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def as_float(x: torch.Tensor) -> torch.Tensor:
    return x if x.is_floating_point() else x.to(torch.float32)


def same_kind(result: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Cast ``result`` back to ``like``'s dtype (e.g. integer arithmetic that torch promoted)."""
    return result if result.dtype == like.dtype else result.to(like.dtype)
