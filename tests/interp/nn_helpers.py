"""Shared helpers of the nn kernel tests (normalization, pooling, resize, conv, end to end)."""

from __future__ import annotations

import torch

from tests.helpers import rel_error

TOL = 1e-5


def close(actual: torch.Tensor, expected: torch.Tensor, tol: float = TOL) -> None:
    assert tuple(actual.shape) == tuple(expected.shape)
    assert rel_error(actual.numpy(), expected.numpy()) <= tol


def rand(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))
