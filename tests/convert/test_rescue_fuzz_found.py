"""Translations for PyTorch uses coremltools 9.0 refuses that the differential fuzzer (tests/interp/difffuzz.py)
ran into: ``x.mT`` / ``x.mH``, ``torch.gather`` with an index smaller than the input on other axes, and
``torch.tile`` with fewer or more reps than the input has axes. Each against PyTorch through the interpreter."""

from __future__ import annotations

import pytest
import torch

from tests.convert.elementwise_helpers import check_rescued


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 5), (2, 1, 3, 4)])
def test_matrix_transpose_attribute(shape):
    x = torch.randn(*shape)
    check_rescued(lambda t: t.mT * 2.0, (x,), "torchscript", "mt")
    check_rescued(lambda t: t.mH + 1.0, (x,), "torchscript", "mh")


@pytest.mark.parametrize(
    ("shape", "dim", "index_shape"),
    [((4, 5), 1, (2, 3)), ((4, 5), 0, (6, 2)), ((3, 4, 5), -2, (2, 7, 5)), ((2, 3, 4), 2, (1, 1, 1))],
)
def test_gather_with_a_smaller_index(shape, dim, index_shape):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=gen)
    index = torch.randint(0, shape[dim], index_shape, generator=gen)
    check_rescued(lambda t: torch.gather(t, dim, index), (x,), "torchscript", "gather")


def test_gather_with_a_full_index_stays_with_coremltools():
    from tests.convert.elementwise_helpers import run_fn

    x = torch.randn(3, 4)
    index = torch.randint(0, 4, (3, 4), generator=torch.Generator().manual_seed(1))
    got, expected, rescued = run_fn(lambda t: torch.gather(t, 1, index), (x,), "torchscript")
    assert "gather" not in rescued
    torch.testing.assert_close(torch.from_numpy(got[0]), torch.from_numpy(expected[0]))


@pytest.mark.parametrize(("shape", "reps"), [((5,), (2, 3)), ((2, 1, 3), (3, 1, 1, 2)), ((4,), (1, 2, 1))])
def test_tile_with_more_reps_than_axes(shape, reps):
    x = torch.randn(*shape)
    check_rescued(lambda t: torch.tile(t, reps), (x,), "torchscript", "tile")


def test_tile_with_fewer_reps_stays_with_coremltools():
    from tests.convert.elementwise_helpers import run_fn

    x = torch.randn(2, 3)
    got, expected, rescued = run_fn(lambda t: torch.tile(t, (2,)), (x,), "torchscript")
    assert "tile" not in rescued
    torch.testing.assert_close(torch.from_numpy(got[0]), torch.from_numpy(expected[0]))


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
@pytest.mark.parametrize("bounds", [{"max": 6.0}, {"min": -0.5}, {"min": -1.0, "max": 1.0}])
def test_one_sided_clamp_keeps_infinities(bounds, frontend):
    """coremltools' clip filled the missing bound with the fp32 extreme: clamp(-inf, max=6) gave -3.4e38
    (PyTorch -inf); the differential fuzzer, seeds 5085 and 5766."""
    from tests.convert.elementwise_helpers import assert_close_elementwise, run_fn

    x = torch.tensor([[-float("inf"), -2.0, -0.0, 0.25, 3.0, 7.5, float("inf"), float("nan")]])
    got, expected, _ = run_fn(lambda t: torch.clamp(t, **bounds), (x,), frontend)
    assert_close_elementwise(got[0], expected[0], rtol=0.0)
