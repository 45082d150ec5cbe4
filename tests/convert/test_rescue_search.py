"""``bucketize``, ``searchsorted``, ``isin``, ``count_nonzero``, ``aminmax`` (coremltools 9.0 has none of them)
against PyTorch through the interpreter: integer results equal, dtypes kept, ties, out-of-range values, NaN."""

from __future__ import annotations

import pytest
import torch

from tests.convert.elementwise_helpers import assert_close_elementwise, assert_same_integers, run_fn

FRONTENDS = ["torchscript", "torch.export"]
NAN, INF = float("nan"), float("inf")
BOUNDS = torch.tensor([-1.0, 0.0, 0.0, 1.5, 3.0])  # a repeated boundary: ties on both sides
VALUES = torch.tensor(
    [[-5.0, -1.0, -0.5, 0.0, 0.7], [1.5, 2.0, 3.0, 9.0, NAN], [INF, -INF, 1.49, 3.01, -1.01]]
)


def _check_ints(fn, inputs, frontend, op):
    got, expected, rescued = run_fn(fn, inputs, frontend)
    assert op in rescued
    for g, e in zip(got, expected):
        assert_same_integers(g, e)


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("right", [False, True])
def test_bucketize_ties_and_out_of_range(frontend, right):
    _check_ints(lambda v: torch.bucketize(v, BOUNDS, right=right), (VALUES,), frontend, "bucketize")


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_bucketize_int_values_and_int32_output(frontend):
    values = torch.tensor([[-3, 0, 1, 2, 3, 7]], dtype=torch.int32)
    bounds = torch.tensor([0, 2, 2, 5], dtype=torch.int32)
    _check_ints(lambda v: torch.bucketize(v, bounds, out_int32=True), (values,), frontend, "bucketize")


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("side", ["left", "right"])
def test_searchsorted_1d_sequence(frontend, side):
    _check_ints(lambda v: torch.searchsorted(BOUNDS, v, side=side), (VALUES,), frontend, "searchsorted")


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("right", [False, True])
def test_searchsorted_nd_sequence_row_by_row(frontend, right):
    torch.manual_seed(0)
    sequence = torch.sort(torch.randint(-4, 4, (2, 3, 6)).float(), dim=-1).values  # repeated values: ties
    values = torch.randint(-6, 6, (2, 3, 4)).float()
    _check_ints(
        lambda s, v: torch.searchsorted(s, v, right=right), (sequence, values), frontend, "searchsorted"
    )


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_searchsorted_with_sorter(frontend):
    sequence = torch.tensor([3.0, -1.0, 2.0, 0.0])
    sorter = torch.argsort(sequence)
    values = torch.tensor([-2.0, 0.0, 2.5, 4.0])
    _check_ints(lambda v: torch.searchsorted(sequence, v, sorter=sorter), (values,), frontend, "searchsorted")


def test_searchsorted_empty_values():
    _check_ints(lambda v: torch.searchsorted(BOUNDS, v[:, :0]), (VALUES,), "torchscript", "searchsorted")


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("invert", [False, True])
def test_isin_ints_and_floats(frontend, invert):
    ids = torch.tensor([[0, 5, 2, 101, 5], [7, 7, 1, 0, 3]])
    specials = torch.tensor([0, 101, 2])
    _check_ints(lambda i: torch.isin(i, specials, invert=invert), (ids,), frontend, "isin")
    floats = torch.tensor([[0.5, NAN, -0.0, 2.0]])  # NaN is in nothing; -0 equals 0
    _check_ints(lambda f: torch.isin(f, torch.tensor([0.0, NAN, 2.0])), (floats,), frontend, "isin")


def test_isin_scalar_and_empty_test_elements():
    ids = torch.tensor([[0, 5, 2, 5]])
    _check_ints(lambda i: torch.isin(i, 5), (ids,), "torchscript", "isin")
    _check_ints(lambda i: torch.isin(i, torch.tensor([], dtype=torch.int64)), (ids,), "torchscript", "isin")


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("dim", [None, 1, -1, (0, 2)])
def test_count_nonzero(frontend, dim):
    x = torch.tensor([[[0.0, 1.0], [-0.0, NAN]], [[2.0, 0.0], [0.0, 0.0]]])
    _check_ints(lambda t: torch.count_nonzero(t, dim=dim), (x,), frontend, "count_nonzero")


def test_count_nonzero_of_bool_and_int():
    x = torch.tensor([[1, 0, -3], [0, 0, 0]], dtype=torch.int32)
    _check_ints(
        lambda t: (torch.count_nonzero(t, 1), torch.count_nonzero(t > 0)),
        (x,),
        "torchscript",
        "count_nonzero",
    )


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(("dim", "keepdim"), [(None, False), (1, False), (-1, True), (0, True)])
def test_aminmax_float(frontend, dim, keepdim):
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5)
    got, expected, rescued = run_fn(lambda t: torch.aminmax(t, dim=dim, keepdim=keepdim), (x,), frontend)
    assert "aminmax" in rescued
    for g, e in zip(got, expected):
        assert_close_elementwise(g, e, rtol=0)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_aminmax_int_keeps_int(frontend):
    x = torch.tensor([[3, -7, 2], [0, 9, 9]], dtype=torch.int32)
    _check_ints(lambda t: torch.aminmax(t, dim=1), (x,), frontend, "aminmax")
