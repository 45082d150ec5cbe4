"""Compress names each weight by the PyTorch module it came from (module path, type, source line), the MIL
names after it: the sensitivity table led with internal names (``op_27_cast_fp16 (conv)``) that nobody can map
back to their model."""

from __future__ import annotations

import torch
from torch import nn

from devicefit import compress, demo
from devicefit.compress.sensitivity import LayerSensitivity
from devicefit.convert import ConvertOptions, convert
from devicefit.report.compress_view import sensitivity_table
from tests.convert.helpers import source_of


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.head = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        return self.head(torch.relu(self.stem(x)).flatten(1))


def test_sensitivity_rows_lead_with_the_pytorch_module_and_line():
    torch.manual_seed(0)
    source = source_of(Net(), (torch.zeros(1, 1, 8, 8),))
    package = convert(source, ConvertOptions(target="iOS18", precision="fp32")).mlmodel
    feeds = [{"x": f["image"]} for f in demo.held_out(24).feeds]
    result = compress.search(package, feeds, compress.SearchOptions("cosine>=0.99", min_elements=64))
    layers = {layer.weight: layer for layer in result.sensitivity.layers}
    assert len(layers) == 2
    wheres = sorted(layer.where for layer in layers.values())
    assert wheres[0].startswith("head (Linear) at ") and "test_names.py:" in wheres[0], wheres
    assert wheres[1].startswith("stem (Conv2d) at ") and "test_names.py:" in wheres[1], wheres
    # the JSON carries the origin too, and the terminal table shows it
    rows = result.to_dict()["sensitivity"]["layers"]
    assert {r["origin"]["module_path"] for r in rows} == {"stem", "head"}
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(sensitivity_table(result))
    text = console.export_text()
    assert "stem (Conv2d) at" in text and "head (Linear) at" in text


def test_a_weight_without_provenance_keeps_its_mil_name():
    layer = LayerSensitivity("w", "op_1 (conv)", 10)
    assert layer.where == "op_1 (conv)"


class Overflowing(nn.Module):
    """fp16 overflows in one spot: (1e3 * h)^2 exceeds 65504 before it is scaled back down."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 16)
        self.b = nn.Linear(16, 8)

    def forward(self, x):
        h = self.a(x)
        big = torch.square(h * 1e3)
        return self.b(torch.relu(h) + big * 1e-6)


def test_fp16_repair_names_the_ops_it_keeps_by_pytorch_line():
    import numpy as np

    from devicefit.compress.budget import parse_budget

    torch.manual_seed(0)
    source = source_of(Overflowing(), (torch.zeros(1, 16),))
    package = convert(source, ConvertOptions(target="iOS18", precision="fp32")).mlmodel
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((1, 16)).astype(np.float32)} for _ in range(8)]
    repair = compress.repair_fp16(package, feeds, parse_budget("cosine>=0.999"))
    assert repair.passed and repair.fp32_ops
    line = Overflowing.forward.__code__.co_firstlineno + 2  # big = torch.square(h * 1e3)
    for text, op in zip(repair.where(), repair.fp32_ops):
        assert text.startswith("the top module (Overflowing) at ") and text.endswith(f"({op})"), text
    assert any(f"test_names.py:{line}" in text for text in repair.where()), (repair.where(), line)
    assert repair.to_dict()["where"] == repair.where()
