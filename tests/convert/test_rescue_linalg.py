"""``tensordot``, ``kron``, ``addmv``, ``addr``, ``linalg_cross``, ``linalg_vander``, ``block_diag`` (coremltools
9.0 has none of them) against PyTorch through the interpreter."""

from __future__ import annotations

import pytest
import torch

from tests.convert.elementwise_helpers import check_rescued

FRONTENDS = ["torchscript", "torch.export"]
NAN = float("nan")


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(
    ("shape_a", "shape_b", "dims"),
    [
        ((3, 4), (4, 5), 1),
        ((2, 3, 4), (4, 3, 5), ([1, 2], [1, 0])),
        ((3, 4), (5, 4), ([1], [1])),
        ((2, 3), (2, 3), 2),
    ],
)
def test_tensordot(frontend, shape_a, shape_b, dims):
    torch.manual_seed(0)
    a, b = torch.randn(*shape_a), torch.randn(*shape_b)
    # one matmul of the same flattened layout as PyTorch's; another summation order is allowed
    check_rescued(
        lambda x, y: torch.tensordot(x, y, dims=dims), (a, b), frontend, "tensordot", rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(
    ("shape_a", "shape_b"),
    [((2, 3), (4, 5)), ((3,), (2, 2)), ((2, 1, 3), (2, 2)), ((2, 2, 1, 2), (3, 1, 2, 2))],
)
def test_kron_is_exact(frontend, shape_a, shape_b):
    torch.manual_seed(0)
    a, b = torch.randn(*shape_a), torch.randn(*shape_b)
    check_rescued(torch.kron, (a, b), frontend, "kron")


def test_kron_keeps_ints_and_fp16():
    a = torch.tensor([[1, -2], [3, 0]], dtype=torch.int32)
    b = torch.tensor([[5, 7, -1]], dtype=torch.int32)
    check_rescued(torch.kron, (a, b), "torchscript", "kron")
    check_rescued(torch.kron, (a.float() / 4, b.float() / 8), "torchscript", "kron", precision="fp16")


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(("beta", "alpha"), [(1, 1), (0.5, -2.0), (0, 3.0)])
def test_addmv(frontend, beta, alpha):
    torch.manual_seed(0)
    base, mat, vec = torch.randn(4), torch.randn(4, 6), torch.randn(6)
    if beta == 0:
        base[1] = NAN  # beta = 0 ignores the input, NaN included
    check_rescued(
        lambda i, m, v: torch.addmv(i, m, v, beta=beta, alpha=alpha),
        (base, mat, vec),
        frontend,
        "addmv",
        1e-6,
        atol=1e-6,
    )


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(("beta", "alpha"), [(1, 1), (2.0, 0.5), (0, 1)])
def test_addr(frontend, beta, alpha):
    torch.manual_seed(0)
    base, v1, v2 = torch.randn(3, 5), torch.randn(3), torch.randn(5)
    check_rescued(
        lambda i, a, b: torch.addr(i, a, b, beta=beta, alpha=alpha),
        (base, v1, v2),
        frontend,
        "addr",
        1e-6,
        atol=1e-7,
    )


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(
    ("shape_a", "shape_b", "dim"), [((4, 3), (4, 3), -1), ((3, 5), (3, 5), 0), ((2, 4, 3), (1, 4, 3), -1)]
)
def test_linalg_cross(frontend, shape_a, shape_b, dim):
    torch.manual_seed(0)
    a, b = torch.randn(*shape_a), torch.randn(*shape_b)
    # PyTorch's kernel rounds a1 * b2 - a2 * b1 differently (measured: 2.4e-7 absolute at unit scale)
    check_rescued(
        lambda x, y: torch.linalg.cross(x, y, dim=dim), (a, b), frontend, "linalg_cross", rtol=1e-6, atol=5e-7
    )


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("count", [None, 2, 3, 6])
def test_linalg_vander_is_bit_exact(frontend, count):
    x = torch.tensor([[1.5, -0.3, 7.0, NAN], [0.0, 2.0, -1.1, 1e10]])
    check_rescued(lambda t: torch.linalg.vander(t, N=count), (x,), frontend, "linalg_vander")


def test_linalg_vander_keeps_ints():
    x = torch.tensor([2, -3, 0, 5], dtype=torch.int32)
    check_rescued(lambda t: torch.linalg.vander(t, N=4), (x,), "torchscript", "linalg_vander")


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_block_diag(frontend):
    torch.manual_seed(0)
    a, b, c = torch.randn(2, 3), torch.randn(3), torch.randn(1, 2)
    check_rescued(lambda x, y, z: torch.block_diag(x, y, z), (a, b, c), frontend, "block_diag")


def test_block_diag_of_one_block_and_ints():
    ints = torch.tensor([[1, 2]], dtype=torch.int32)
    check_rescued(lambda t: torch.block_diag(t, t), (ints,), "torchscript", "block_diag")
