"""A convolution with a BatchNorm fused into it is named as the Conv2d, not the BatchNorm it absorbed."""

from __future__ import annotations

import pytest
import torch

from devicefit.convert import provenance
from tests.convert.helpers import ct_convert


class DilatedBlock(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=2, dilation=2)
        self.bn = torch.nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


@pytest.mark.parametrize("frontend", ["torchscript", "export"])
def test_fused_conv_batchnorm_is_named_as_the_conv(frontend):
    ct = pytest.importorskip("coremltools")
    mlmodel, source = ct_convert(ct, DilatedBlock().eval(), torch.randn(1, 3, 8, 8), frontend)
    conv = next(op for op in mlmodel._mil_program.functions["main"].operations if op.op_type == "conv")
    origin = provenance.collect(mlmodel, source).get(conv.outputs[0].name)
    assert origin is not None
    assert (origin.module_path, origin.module_type) == ("conv", "Conv2d"), origin
