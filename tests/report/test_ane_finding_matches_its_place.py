"""A Neural Engine finding's reason is the reason of the op it names, in PyTorch terms.

Found by the outside sweep (MobileNetV3): the verdict read "most of it at blocks.3.block.6.fc2 (Conv2d) at
net.py:44 (input_95_cast_fp16) (+15 more): output input_21_cast_fp16 [1x16x1x1] has last axis 1": the place
was the rule's costliest op, the reason the first op the rule fired on (another layer, named by its Core ML
value)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TwoGates(nn.Module):
    """Two squeeze-excite gates (outputs of last axis 1): a cheap one first, a costly one second."""

    def __init__(self) -> None:
        super().__init__()
        self.small = nn.Conv2d(4, 4, 1)
        self.widen = nn.Conv2d(4, 64, 3, padding=1)
        self.big = nn.Conv2d(64, 64, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * torch.sigmoid(self.small(F.adaptive_avg_pool2d(x, 1)))
        y = self.widen(x)
        return y * torch.sigmoid(self.big(F.adaptive_avg_pool2d(y, 1)))


def test_the_reason_shown_is_the_named_ops_and_names_no_core_ml_value():
    from devicefit.analyze import ane_lint
    from devicefit.convert import ConvertOptions, convert
    from devicefit.report.devices import ane_section
    from devicefit.sources.module import from_module

    torch.manual_seed(0)
    source = from_module("gates", "python", TwoGates().eval(), torch.randn(1, 4, 8, 8), None)
    lint = ane_lint.lint(convert(source, ConvertOptions(target="iOS17")).mlmodel)
    (row,) = [r for r in ane_section(lint)["reasons"] if r["rule"] == "ANE-LASTAXIS1"]
    assert row["ops"] >= 2
    assert row["where"][0].startswith("big (Conv2d)"), row["where"]  # the costliest op leads
    assert "[1x64x1x1]" in row["reason"], row["reason"]  # ...and the reason is that op's (64 channels)
    values = {o.name for o in lint.ops if any(c.isdigit() for c in o.name)}  # Core ML's generated names
    assert not [n for n in values if n in row["reason"]], row["reason"]
    assert "_fp16" not in row["reason"] and "_cast" not in row["reason"], row["reason"]
