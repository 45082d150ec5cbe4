"""Provenance: every op of a converted model maps to its PyTorch module, type and source line."""

from __future__ import annotations

import inspect

import pytest
import torch

from devicefit.convert import provenance
from devicefit.convert.provenance import Origin, Provenance
from tests.convert.helpers import ct_convert


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.act = torch.nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)  # CONV-LINE
        return self.act(y) * 2  # MUL-LINE


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = Block()
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return self.fc(y.mean((2, 3)))


def _line(marker: str) -> int:
    src, start = inspect.getsourcelines(Block.forward)
    return start + next(i for i, text in enumerate(src) if marker in text)


HERE = __file__.rsplit("/", 1)[-1]


def _convert(ct, frontend: str):
    return ct_convert(ct, Net().eval(), torch.randn(1, 3, 8, 8), frontend)


def _conv_name(mlmodel) -> str:
    ops = mlmodel._mil_program.functions["main"].operations
    return next(op.outputs[0].name for op in ops if op.op_type == "conv")


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_conv_maps_to_module_type_and_line(ct, frontend: str) -> None:
    mlmodel, source = _convert(ct, frontend)
    prov = provenance.collect(mlmodel, source)
    origin = prov.get(_conv_name(mlmodel))
    assert origin is not None
    assert origin.module_path == "block.conv"
    assert origin.module_type == "Conv2d"
    assert origin.location is not None and origin.location.endswith(f"{HERE}:{_line('CONV-LINE')}")
    assert origin.label().startswith("block.conv (Conv2d) at ")
    # the user's line, never a torch library frame
    assert "site-packages" not in origin.label()


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_op_of_a_user_module_and_its_weights(ct, frontend: str) -> None:
    mlmodel, source = _convert(ct, frontend)
    prov = provenance.collect(mlmodel, source)
    ops = mlmodel._mil_program.functions["main"].operations
    mul = next(op.outputs[0].name for op in ops if op.op_type == "mul")
    origin = prov.get(mul)
    assert origin is not None and origin.module_path == "block" and origin.module_type == "Block"
    assert origin.location is not None and origin.location.endswith(f"{HERE}:{_line('MUL-LINE')}")
    weight = next(
        op.outputs[0].name for op in ops if op.op_type == "const" and "conv_weight" in op.outputs[0].name
    )
    assert prov.get(weight) == prov.get(_conv_name(mlmodel))


def test_torchscript_without_a_traced_graph_uses_the_call_site(ct) -> None:
    mlmodel, _ = _convert(ct, "torchscript")
    origin = provenance.collect(mlmodel, Net()).get(_conv_name(mlmodel))
    assert origin is not None and origin.location is not None
    assert origin.location.endswith(f"{HERE}:{_line('CONV-LINE')}")


def test_persisted_in_the_package_and_read_back(ct, tmp_path) -> None:
    mlmodel, source = _convert(ct, "torch.export")
    prov = provenance.collect(mlmodel, source)
    provenance.attach(mlmodel, prov)
    path = tmp_path / "m.mlpackage"
    mlmodel.save(str(path))
    back = provenance.load_from_package(path)
    assert back is not None
    name = _conv_name(mlmodel)
    assert back.get(name) == prov.get(name)
    assert back.label(name).startswith("block.conv (Conv2d) at ") and back.label(name).endswith(f"({name})")


def test_package_without_provenance_gives_none(ct, tmp_path) -> None:
    mlmodel, _ = _convert(ct, "torch.export")
    path = tmp_path / "m.mlpackage"
    mlmodel.save(str(path))
    assert provenance.load_from_package(path) is None
    assert provenance.load_from_package(tmp_path / "missing.mlpackage") is None


def test_json_round_trip_and_labels() -> None:
    a = Origin("features.3.conv", "Conv2d", "models/net.py:42")
    prov = Provenance({"x1": a, "x2": a, "x3": Origin("", "Net", None)})
    d = prov.to_json()
    assert len(d["origins"]) == 2  # shared origins stored once
    back = Provenance.from_json(d)
    assert back.get("x2") == a
    assert a.label() == "features.3.conv (Conv2d) at models/net.py:42"
    assert back.get("x3").label() == "the top module (Net)"
    assert back.label("unknown_op") == "unknown_op"
    with pytest.raises(ValueError):
        Provenance.from_json({"origins": [], "names": {"a": 3}})


def make_net():
    return Net().eval(), (torch.randn(1, 3, 8, 8),)


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_devicefit_convert_saves_provenance(frontend: str, tmp_path) -> None:
    from devicefit.convert import ConvertOptions, convert
    from devicefit.sources import load_source

    result = convert(load_source(f"{__file__}:make_net"), ConvertOptions(frontend=frontend))
    saved = result.save(tmp_path / "net.mlpackage")
    prov = provenance.load_from_package(saved)
    assert prov is not None
    label = prov.label(_conv_name(result.mlmodel))
    # the wrapper devicefit traces through is invisible: paths are the user's module paths
    assert label.startswith("block.conv (Conv2d) at "), label
    assert f"{HERE}:{_line('CONV-LINE')}" in label
