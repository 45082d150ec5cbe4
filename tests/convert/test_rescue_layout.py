"""``diagonal`` (coremltools refuses offsets and returns a matrix for offset 0), ``rot90``, ``movedim``,
``broadcast_to``, ``cartesian_prod``, ``roll`` without dims, ``tril_indices`` / ``triu_indices`` against PyTorch
through the interpreter: all exact."""

from __future__ import annotations

import pytest
import torch

from tests.convert.elementwise_helpers import check_rescued

FRONTENDS = ["torchscript", "torch.export"]


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(
    ("offset", "dim1", "dim2"), [(0, 0, 1), (1, 0, 1), (-2, 0, 1), (0, -1, 0), (2, 1, 2)]
)
def test_diagonal(frontend, offset, dim1, dim2):
    torch.manual_seed(0)
    x = torch.randn(4, 5, 3) if dim2 == 2 else torch.randn(4, 5)
    check_rescued(lambda t: torch.diagonal(t, offset, dim1, dim2) * 1, (x,), frontend, "diagonal")


def test_diagonal_of_batched_matrices_keeps_ints():
    x = torch.arange(24, dtype=torch.int32).reshape(2, 3, 4)
    check_rescued(lambda t: t.diagonal(1, -2, -1), (x,), "torchscript", "diagonal")


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(
    ("k", "dims"), [(1, (0, 1)), (2, (0, 1)), (3, (1, 2)), (-1, (2, 0)), (4, (0, 1)), (5, (-1, -2))]
)
def test_rot90(frontend, k, dims):
    x = torch.arange(24.0).reshape(2, 3, 4)
    check_rescued(lambda t: torch.rot90(t, k, dims) + 0, (x,), frontend, "rot90")


@pytest.mark.parametrize(("source", "destination"), [(0, 2), (-1, 0), ((0, 1), (2, 0)), ((1,), (1,))])
def test_movedim_on_torchscript(source, destination):
    x = torch.arange(24.0).reshape(2, 3, 4)
    check_rescued(lambda t: torch.movedim(t, source, destination) + 0, (x,), "torchscript", "movedim")


def test_broadcast_to_on_torchscript():
    torch.manual_seed(0)
    x = torch.randn(3, 1)
    check_rescued(lambda t: torch.broadcast_to(t, (2, 3, 4)) + 0, (x,), "torchscript", "broadcast_to")


def test_cartesian_prod_on_torchscript():
    a, b, c = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0, 5.0]), torch.tensor([-1.0, 7.0])
    check_rescued(lambda x, y: torch.cartesian_prod(x, y), (a, b), "torchscript", "cartesian_prod")
    check_rescued(lambda x, y, z: torch.cartesian_prod(x, y, z), (a, b, c), "torchscript", "cartesian_prod")
    ints = torch.tensor([3, 1], dtype=torch.int32)
    check_rescued(lambda x: torch.cartesian_prod(x, x), (ints,), "torchscript", "cartesian_prod")


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("shift", [2, -3, 0, 13])
def test_roll_without_dims(frontend, shift):
    x = torch.arange(12.0).reshape(3, 4)
    check_rescued(lambda t: torch.roll(t, shift) + 0, (x,), frontend, "roll")


def test_roll_with_dims_stays_with_coremltools():
    from tests.convert.elementwise_helpers import run_fn

    x = torch.arange(12.0).reshape(3, 4)
    got, expected, rescued = run_fn(lambda t: torch.roll(t, (1, -1), (0, 1)), (x,), "torch.export")
    assert "roll" not in rescued
    assert (got[0] == expected[0]).all()


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("op", ["tril_indices", "triu_indices"])
@pytest.mark.parametrize("offset", [0, 1, -1])
def test_triangle_indices(frontend, op, offset):
    torch.manual_seed(0)
    x = torch.randn(4, 5)
    fn = getattr(torch, op)
    # the typical use: pairwise features picked from a matrix by the triangle's indices
    check_rescued(lambda t: t[tuple(fn(4, 5, offset))], (x,), frontend, op)
