"""A conv weight with a BatchNorm folded into it is named as such, not as the BatchNorm alone: compress's
sensitivity table listed a U-Net's 16x8x3x3 conv weight as "down2.bn1 (BatchNorm2d) at unet.py:13"; the fused
conv is named as the conv (its BatchNorm folded in), as every finding about that conv op is."""

from __future__ import annotations

import torch


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(8, 16, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(16)
        self.head = torch.nn.Conv2d(16, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn(self.conv(x))))


def test_a_conv_weight_with_its_batchnorm_folded_in_says_so():
    from devicefit.compress.weights import find_weights, weight_origins
    from devicefit.convert import ConvertOptions, convert
    from devicefit.sources.module import from_module

    torch.manual_seed(0)
    source = from_module("block", "python", Block().eval(), torch.randn(1, 8, 8, 8), None)
    mlmodel = convert(source, ConvertOptions(target="iOS17")).mlmodel
    weights = find_weights(mlmodel, min_elements=64)
    origins = weight_origins(mlmodel, mlmodel, weights)
    labels = {w.shape: origins[w.name].label() for w in weights if w.name in origins}
    folded = labels[(16, 8, 3, 3)]
    assert folded.startswith("conv (Conv2d, with bn (BatchNorm2d) folded in) at ") and ".py:" in folded
    assert labels[(4, 16, 1, 1)].startswith("head (Conv2d) at ")  # a plain conv keeps its own name
