"""Integer clamp: coremltools clip cast integers to fp32 (one_hot of clamped ids failed to convert)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.convert.helpers import convert_and_compare


class ClampedIndices(torch.nn.Module):
    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        float_bound = ids.clamp(max=4.5)[..., None]  # a float bound: torch's result is float
        return F.one_hot(ids.clamp(max=4), 5).float() + ids.clamp(1, 3)[..., None].float() + float_bound


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_clamped_integers_stay_integers(frontend):
    # coremltools' clip cast them to fp32: one_hot(ids.clamp(max=4), 5) failed at the one_hot
    convert_and_compare(ClampedIndices(), (torch.randint(0, 9, (2, 6)),), frontend)
