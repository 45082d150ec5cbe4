"""Size by layer, the activation peak and the Neural Engine lint lead with the PyTorch module and line."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch


class Head(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)  # PROJ-LINE


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.head = Head()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x))  # CONV-LINE
        # an op the Neural Engine rules flag: a large reduction
        y = y.mean((2, 3))
        z = torch.nn.functional.pad(y, (0, 48))
        return self.head(z)


def make_net():
    return Net().eval(), (torch.randn(1, 3, 32, 32),)


def _line(cls: type, marker: str) -> str:
    src, start = inspect.getsourcelines(cls.forward)
    return f"{Path(__file__).name}:{start + next(i for i, t in enumerate(src) if marker in t)}"


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    from devicefit.convert import ConvertOptions, convert
    from devicefit.sources import load_source

    result = convert(load_source(f"{__file__}:make_net"), ConvertOptions(frontend="torchscript"))
    return result.save(tmp_path_factory.mktemp("prov") / "net.mlpackage")


def test_size_layers_name_the_module(package):
    from devicefit import interp
    from devicefit.analyze.size import analyze_size

    rep = analyze_size(interp.load(package), package)
    by_type = {layer.op_type: layer for layer in rep.layers}
    conv = by_type["conv"]
    assert conv.origin is not None and conv.origin.module_path == "conv"
    assert conv.where.startswith("conv (Conv2d) at ") and _line(Net, "CONV-LINE") in conv.where
    assert conv.where.endswith(f"({conv.op})")  # the MIL name only follows, in parentheses
    linear = by_type["linear"]
    assert linear.where.startswith("head.proj (Linear) at ") and _line(Head, "PROJ-LINE") in linear.where


def test_memory_peak_names_the_module_and_says_what_to_do(package):
    from devicefit import interp
    from devicefit.analyze.memory import program_activation_memory

    mem = program_activation_memory(interp.load(package))
    assert mem.peak_origin is not None and mem.peak_where is not None
    assert not mem.peak_where.startswith(mem.peak_op or "?")  # leads with the PyTorch module, not the MIL op
    assert mem.peak_where.endswith(f"({mem.peak_op})")
    advice = mem.advice()
    assert mem.peak_where in advice and "To lower it" in advice
    assert mem.peak_values and mem.peak_values[0][1] >= mem.peak_values[-1][1]


def test_lint_ops_name_the_module(package):
    from devicefit.analyze import ane_lint

    report = ane_lint.lint(package)
    conv = next(o for o in report.ops if o.op_type == "conv")
    assert conv.where.startswith("conv (Conv2d) at ") and conv.where.endswith(f"({conv.name})")
    d = report.to_dict()
    row = next(o for o in d["ops"] if o["op_type"] == "conv")
    assert row["origin"]["module_type"] == "Conv2d" and row["where"] == conv.where


def test_without_provenance_the_mil_name_stands_alone(tmp_path):
    from devicefit import interp
    from devicefit.analyze.size import analyze_size
    from tests.helpers import convert

    ml = convert(Net().eval(), torch.randn(1, 3, 32, 32), precision="fp16", target="iOS17")
    path = tmp_path / "bare.mlpackage"
    ml.save(str(path))
    rep = analyze_size(interp.load(path), path)
    assert all(layer.origin is None and layer.where == layer.op for layer in rep.layers)
