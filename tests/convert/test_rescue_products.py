"""``inner``, ``linalg.multi_dot`` / ``chain_matmul``, ``linalg.matrix_power``, ``vander`` and the aliases ``ger``,
``special.erfinv`` / ``xlogy`` / ``logit`` (coremltools 9.0 has none of them) against PyTorch."""

from __future__ import annotations

import math

import pytest
import torch

from devicefit.convert.rescue.products import chain_order
from tests.convert.elementwise_helpers import check_rescued

FRONTENDS = ["torchscript", "torch.export"]


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_inner(frontend):
    torch.manual_seed(0)
    a, b = torch.randn(2, 3, 4), torch.randn(5, 4)
    check_rescued(torch.inner, (a, b), frontend, "inner", rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("frontend", FRONTENDS)
def test_inner_of_vectors_and_a_scalar(frontend):
    torch.manual_seed(0)
    check_rescued(torch.inner, (torch.randn(6), torch.randn(6)), frontend, "inner", rtol=1e-5, atol=1e-6)
    check_rescued(lambda a: torch.inner(a, torch.tensor(2.5)), (torch.randn(3),), frontend, "inner")


def test_multi_dot_order_is_pytorchs():
    # (10x100)(100x5)(5x50): ((AB)C) costs 7,500, (A(BC)) 75,000; the textbook example, split after the second
    assert chain_order([10, 100, 5, 50])[0][2] == 1
    # a row vector first: left to right, ((AB)C)D, costs 1,650 against 3,850 for (AB)(CD): split after the third
    assert chain_order([1, 30, 35, 15, 5])[0][3] == 2


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_multi_dot(frontend):
    torch.manual_seed(0)
    mats = (torch.randn(6), torch.randn(6, 3), torch.randn(3, 8), torch.randn(8, 2))
    fn = lambda a, b, c, d: torch.linalg.multi_dot([a, b, c, d])  # noqa: E731
    check_rescued(fn, mats, frontend, "linalg_multi_dot", rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("frontend", FRONTENDS)
def test_multi_dot_three_and_chain_matmul(frontend):
    torch.manual_seed(0)
    a, b, c = torch.randn(4, 9), torch.randn(9, 2), torch.randn(2)
    three = lambda x, y, z: torch.linalg.multi_dot([x, y, z])  # noqa: E731
    check_rescued(three, (a, b, c), frontend, "linalg_multi_dot", rtol=1e-5, atol=1e-6)
    chained = lambda x, y: torch.chain_matmul(x, y, x.T)  # noqa: E731
    check_rescued(chained, (a, torch.randn(9, 9)), frontend, "linalg_multi_dot", rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(
    "power",
    [
        pytest.param(0, marks=pytest.mark.slow),
        pytest.param(3, marks=pytest.mark.slow),
        pytest.param(6, marks=pytest.mark.slow),
        -2,
    ],
)
def test_matrix_power(frontend, power):
    torch.manual_seed(0)
    a = 0.5 * torch.randn(2, 3, 3) + torch.eye(3)
    a[0, 0, 0] = math.nan if power == 0 else a[0, 0, 0]  # A^0 is the identity whatever A holds
    rtol = 1e-4 if power < 0 else 1e-5
    check_rescued(
        lambda t: torch.linalg.matrix_power(t, power), (a,), frontend, "linalg_matrix_power", rtol, atol=1e-5
    )


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("increasing", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_vander_is_bit_exact(frontend, increasing):
    x = torch.tensor([1.5, -0.3, 7.0, math.nan, 0.0, 1e10])
    check_rescued(lambda t: torch.vander(t, 5, increasing=increasing), (x,), frontend, "vander")
    ints = torch.tensor([2, -3, 0, 5], dtype=torch.int32)
    check_rescued(lambda t: torch.vander(t, increasing=increasing), (ints,), frontend, "vander")


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_aliases(frontend):
    torch.manual_seed(0)
    a, b = torch.randn(4), torch.randn(5)
    p = torch.tensor([0.0, 0.25, 0.5, 0.9, 1.0])
    special = torch.special

    def fn(x, y, q):
        return torch.ger(x, y), special.logit(q), special.erfinv(q * 1.8 - 0.9), special.xlogy(q, q + 0.5)

    ops = ("ger", "special_logit", "special_erfinv", "special_xlogy")
    check_rescued(fn, (a, b, p), frontend, ops, rtol=4e-6)


def test_splits_on_torchscript():
    # torch.export decomposes hsplit / vsplit / dsplit
    x = torch.randn(4, 6, 5)
    fn = lambda t: (torch.hsplit(t, 3)[1] * 2, torch.dsplit(t, [1, 3])[2] * 2, torch.vsplit(t, [3])[0] * 2)  # noqa: E731
    check_rescued(fn, (x,), "torchscript", ("hsplit", "dsplit", "vsplit"))


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_take_diagflat_fftshift(frontend):
    torch.manual_seed(0)
    x = torch.randn(4, 6, 5)

    def fn(t):
        taken = torch.take(t, torch.tensor([[0, -1], [7, -120]]))
        return (
            taken,
            torch.diagflat(t[:2, :2, 0], 1),
            torch.fft.fftshift(t, dim=(0, 2)),
            torch.fft.ifftshift(t),
        )

    check_rescued(fn, (x,), frontend, ("take", "diagflat", "fft_fftshift", "fft_ifftshift"))


def test_alpha_dropout_in_eval_mode_is_the_identity():
    from tests.convert.helpers import convert_and_compare

    class SelfNormalizing(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Sequential(
                torch.nn.Linear(4, 4), torch.nn.SELU(), torch.nn.AlphaDropout(0.2)
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x) + torch.nn.functional.feature_alpha_dropout(x, 0.3, training=self.training)

    result, _ = convert_and_compare(SelfNormalizing().eval(), (torch.randn(2, 4),), tol=1e-6)
    assert {"alpha_dropout", "feature_alpha_dropout"} <= set(result.scan.rescued)
