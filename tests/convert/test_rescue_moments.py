"""``torch.var_mean`` / ``torch.std_mean``: coremltools 9.0 had no translation."""

from __future__ import annotations

import pytest
import torch

from tests.convert.helpers import convert_and_compare


class Moments(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        var, mean = torch.var_mean(x, dim=1, keepdim=True)  # a hand-written LayerNorm2d
        normed = (x - mean) / torch.sqrt(var + 1e-5)
        std, mean2 = torch.std_mean(x, dim=(2, 3), correction=0)
        var_all, mean_all = torch.var_mean(x, unbiased=False)
        return normed + var_all + mean_all, std, mean2  # (Core ML has no rank-0 outputs)


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_var_mean_and_std_mean_convert_and_match_pytorch(frontend):
    torch.manual_seed(0)
    result, _ = convert_and_compare(Moments(), (torch.randn(2, 4, 5, 6) * 3 + 1,), frontend, tol=1e-5)
    assert {"var_mean", "std_mean"} & set(result.scan.rescued), result.scan.rescued
