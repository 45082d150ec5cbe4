"""``cummax``, ``cummin``, ``kthvalue`` (coremltools 9.0 has none of them) against PyTorch through the
interpreter: values and indices exactly, ties, NaN and signed zeros included."""

from __future__ import annotations

import pytest
import torch

from tests.convert.elementwise_helpers import check_rescued

FRONTENDS = ["torchscript", "torch.export"]
NAN = float("nan")


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("op", ["cummax", "cummin"])
def test_running_extreme_ties_nan_and_signed_zeros(frontend, op):
    # ties move the index to the later equal value; from a NaN on, the latest NaN wins; -0 / 0 are equal
    x = torch.tensor(
        [
            [1.0, 3.0, 3.0, 2.0, 3.0, NAN, 5.0, NAN, 1.0],
            [0.0, -0.0, 0.0, -0.0, -2.0, -2.0, 4.0, -float("inf"), 9.0],
        ]
    )
    fn = getattr(torch, op)
    check_rescued(lambda t: tuple(fn(t, 1)), (x,), frontend, op)


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(("op", "dim"), [("cummax", 0), ("cummin", 1), ("cummax", -1)])
def test_running_extreme_along_any_dim(frontend, op, dim):
    torch.manual_seed(0)
    x = torch.randint(-3, 4, (4, 5, 3)).float()  # many ties
    fn = getattr(torch, op)
    check_rescued(lambda t: tuple(fn(t, dim)), (x,), frontend, op)


@pytest.mark.parametrize("op", ["cummax", "cummin"])
def test_running_extreme_keeps_ints_and_fp16(op):
    fn = getattr(torch, op)
    ints = torch.tensor([[5, -2, 7, 7, -9, 0]], dtype=torch.int32)
    check_rescued(lambda t: tuple(fn(t, 1)), (ints,), "torchscript", op)
    halves = torch.tensor([[0.5, -1.25, 2.0, 2.0, 0.75, -3.5]])  # exact in fp16: the indices match too
    check_rescued(lambda t: tuple(fn(t, 1)), (halves,), "torchscript", op, precision="fp16")


def test_running_max_values_only():
    torch.manual_seed(0)
    x = torch.randn(2, 7)
    check_rescued(lambda t: torch.cummax(t, 1).values * 2, (x,), "torch.export", "cummax")


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(
    ("k", "dim", "keepdim"), [(1, -1, False), (3, 1, True), (2, 0, False), (5, -1, False)]
)
def test_kthvalue(frontend, k, dim, keepdim):
    torch.manual_seed(0)
    x = torch.randn(3, 5)  # distinct values: the index is unique
    check_rescued(lambda t: tuple(torch.kthvalue(t, k, dim, keepdim)), (x,), frontend, "kthvalue")


def test_kthvalue_puts_nan_last_and_keeps_ints():
    x = torch.tensor([[3.0, NAN, 1.0, 2.0]])
    check_rescued(lambda t: tuple(torch.kthvalue(t, 4)), (x,), "torchscript", "kthvalue")
    check_rescued(lambda t: tuple(torch.kthvalue(t, 2)), (x,), "torchscript", "kthvalue")
    ints = torch.tensor([[9, -4, 6, 0]], dtype=torch.int32)
    check_rescued(lambda t: tuple(torch.kthvalue(t, 3)), (ints,), "torch.export", "kthvalue")


TIES = torch.tensor([[2.0, -1.0, 2.0, 0.5, -1.0, 2.0], [0.0, 0.0, 3.0, float("nan"), 0.0, -3.0]])


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
@pytest.mark.parametrize("descending", [False, True])
def test_stable_sort_keeps_ties_in_input_order(frontend, descending):
    # torch.sort(..., stable=True) / torch.argsort(..., stable=True) were refused by both frontends
    def fn(t):
        values, indices = torch.sort(t, dim=1, descending=descending, stable=True)
        return values, indices, torch.argsort(t, dim=1, descending=descending, stable=True)

    check_rescued(fn, (TIES,), frontend, "sort")
