"""``torch.cdist`` and ``torch.median(x, dim)``: coremltools 9.0 had no translation."""

from __future__ import annotations

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
