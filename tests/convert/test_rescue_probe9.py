"""``isclose``, ``combinations``, ``adaptive_max_pool{1,2}d(return_indices=True)`` and ``linalg.matrix_norm`` on
torch.export (refused by coremltools 9.0, found by the one-op probe, scripts/probe_ops.py) against PyTorch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.convert.elementwise_helpers import check_rescued

FRONTENDS = ["torchscript", "torch.export"]
NAN, INF = math.nan, math.inf


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_isclose(frontend):
    a = torch.tensor([1.0, 2.0, NAN, INF, -INF, 0.0, 1e-9, 100.0, INF, 5.0])
    b = torch.tensor([1.005, 2.1, NAN, INF, INF, 1e-4, 0.0, 100.5, 3.0, NAN])
    fn = lambda x, y: (torch.isclose(x, y, rtol=1e-2, atol=1e-3), torch.isclose(x, y, equal_nan=True))  # noqa: E731
    check_rescued(fn, (a, b), frontend, "isclose")


@pytest.mark.slow
def test_isclose_zero_tolerances_and_ints():
    a, b = torch.tensor([1.0, NAN, 2.0]), torch.tensor([1.0, NAN, 2.0000002])
    check_rescued(lambda x, y: torch.isclose(x, y, rtol=0.0, atol=0.0), (a, b), "torchscript", "isclose")
    i, j = torch.tensor([3, 10, -4], dtype=torch.int32), torch.tensor([3, 11, -6], dtype=torch.int32)
    check_rescued(lambda x, y: torch.isclose(x, y, rtol=0.05, atol=1.0), (i, j), "torchscript", "isclose")


@pytest.mark.parametrize(
    ("r", "replace"),
    [
        (2, False),
        pytest.param(3, True, marks=pytest.mark.slow),
        pytest.param(1, False, marks=pytest.mark.slow),
    ],
)
def test_combinations_on_torchscript(r, replace):
    # torch.export itself cannot trace torch.combinations (its decomposition has a data-dependent size)
    x = torch.tensor([1.5, -2.0, NAN, 4.0, 0.0])
    fn = lambda t: torch.combinations(t, r, with_replacement=replace)  # noqa: E731
    check_rescued(fn, (x,), "torchscript", "combinations")


def _ties_and_nans() -> torch.Tensor:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 9).round()  # many ties: the first maximum in row-major order wins
    x[0, 0, 1, 2] = x[0, 0, 5, 6] = NAN  # two NaNs in windows: PyTorch gives the last NaN's index
    x[1, 2, 6, 8] = NAN
    return x


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(
    "size",
    [(7, 3), pytest.param((1, 1), marks=pytest.mark.slow), pytest.param((3, 4), marks=pytest.mark.slow)],
)
def test_adaptive_max_pool2d_indices(frontend, size):
    fn = lambda t: F.adaptive_max_pool2d(t, size, return_indices=True)  # noqa: E731
    check_rescued(fn, (_ties_and_nans(),), frontend, "adaptive_max_pool2d")


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_adaptive_max_pool1d_indices(frontend):
    x = _ties_and_nans()[0, :, 1]  # (3, 9): unbatched
    fn = lambda t: F.adaptive_max_pool1d(t, 4, return_indices=True)  # noqa: E731
    check_rescued(fn, (x,), frontend, "adaptive_max_pool1d")


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(
    ("order", "dim", "keepdim"),
    [
        ("fro", (-2, -1), False),
        pytest.param(INF, (-2, -1), False, marks=pytest.mark.slow),
        pytest.param(-INF, (0, 2), True, marks=pytest.mark.slow),
        pytest.param(1, (2, 1), False, marks=pytest.mark.slow),
        pytest.param(-1, (-1, 0), True, marks=pytest.mark.slow),
    ],
)
def test_matrix_norm(frontend, order, dim, keepdim):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4)
    fn = lambda t: torch.linalg.matrix_norm(t, order, dim, keepdim)  # noqa: E731
    check_rescued(fn, (x,), frontend, "linalg_matrix_norm", rtol=1e-6)


def test_matrix_norm_refuses_singular_value_norms():
    from devicefit.convert import ConversionError

    with pytest.raises(ConversionError, match=r"singular values"):
        check_rescued(lambda t: torch.linalg.matrix_norm(t, "nuc"), (torch.randn(3, 3),), "torch.export", "x")


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(
    "how",
    [
        pytest.param(dict(scale_factor=2), marks=pytest.mark.slow),
        dict(size=(3, 7, 2)),
        pytest.param(dict(scale_factor=(1.5, 0.7, 1.0)), marks=pytest.mark.slow),
    ],
    ids=["x2", "size", "fractional"],
)
def test_upsample_nearest3d_is_exact(frontend, how):
    torch.manual_seed(0)
    x = torch.randn(1, 2, 4, 5, 3)
    x[0, 0, 1, 2, 0], x[0, 1, 3, 4, 2] = INF, NAN
    check_rescued(lambda t: F.interpolate(t, mode="nearest", **how), (x,), frontend, "upsample_nearest3d")
