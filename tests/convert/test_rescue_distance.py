"""``torch.cdist`` and ``torch.median(x, dim)``: coremltools 9.0 had no translation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.convert.helpers import convert_and_compare


class Distances(torch.nn.Module):
    def forward(self, queries: torch.Tensor, prototypes: torch.Tensor) -> tuple[torch.Tensor, ...]:
        middle, where = torch.median(queries, dim=1)
        return (
            torch.cdist(queries, prototypes),
            torch.cdist(queries, prototypes, p=1.0) + torch.cdist(queries, prototypes, p=float("inf")),
            torch.cdist(queries, queries, p=3.0),  # the diagonal is exactly 0
            middle + torch.median(prototypes),  # over every element
            where,
            torch.median(queries, dim=-1, keepdim=True).values,
        )


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_cdist_and_median_convert_and_match_pytorch(frontend):
    torch.manual_seed(0)
    example = (torch.randn(2, 7, 5), torch.randn(2, 3, 5))
    result, _ = convert_and_compare(Distances(), example, frontend, tol=1e-5)
    assert {"cdist", "median"} <= set(result.scan.rescued), result.scan.rescued


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_median_of_a_slice_with_nan_is_nan(frontend):
    # PyTorch's median is NaN (at the first NaN's index) where the slice holds a NaN; the argsort-based
    # translation ranked the NaN last and gave a finite median (difffuzz seeds 198, 228)
    from tests.convert.elementwise_helpers import assert_close_elementwise, run_fn

    x = torch.tensor([[1.0, float("nan"), 3.0, float("nan"), 2.0], [4.0, -1.0, 0.5, 2.0, 3.0]])
    for keep in (False, True):
        got, expected, rescued = run_fn(lambda t, k=keep: torch.median(t, 1, keepdim=k), (x,), frontend)
        assert "median" in rescued
        assert_close_elementwise(got[0], expected[0], rtol=0.0)
        np.testing.assert_array_equal(got[1], expected[1])
    got, expected, _ = run_fn(lambda t: torch.median(t), (x,), frontend)
    assert np.isnan(got[0]).all() and np.isnan(expected[0]).all()


def test_median_of_integers_still_converts():
    from tests.convert.elementwise_helpers import run_fn

    x = torch.tensor([[3, -1, 2, 7], [0, 0, 5, -4]])
    got, expected, _ = run_fn(lambda t: torch.median(t, 1)[0], (x,), "torchscript")
    np.testing.assert_array_equal(got[0], expected[0])
