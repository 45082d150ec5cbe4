"""Multi-function packages (iOS18): two converted models merged with coremltools' MultiFunctionDescriptor;
each function of the merged package matches its source model."""

from __future__ import annotations

import pytest
import torch

from devicefit import interp
from devicefit.errors import InputError
from tests.helpers import convert, rel_error


class Head(torch.nn.Module):
    def __init__(self, out_features: int, act: str):
        super().__init__()
        self.fc = torch.nn.Linear(6, out_features)
        self.act = act

    def forward(self, x):
        y = self.fc(x)
        return torch.relu(y) if self.act == "relu" else torch.sigmoid(y)


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    from devicefit._lazy import coremltools

    ct = coremltools()
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("multifunction")
    modules = {"a": Head(4, "relu").eval(), "b": Head(3, "sigmoid").eval()}
    x = torch.randn(2, 6)
    desc = ct.utils.MultiFunctionDescriptor()
    for name, module in modules.items():
        path = folder / f"{name}.mlpackage"
        convert(module, x, target="iOS18").save(str(path))
        desc.add_function(str(path), src_function_name="main", target_function_name=name)
    desc.default_function_name = "a"
    out = folder / "merged.mlpackage"
    ct.utils.save_multifunction(desc, str(out))
    return out, modules, x


@pytest.mark.parametrize("function", ["a", "b"])
def test_each_function_matches_its_source(merged, function):
    path, modules, x = merged
    prog = interp.load(path, function=function)
    assert prog.function == function
    assert sorted(prog.functions) == ["a", "b"]
    out = prog.run({"x": x.numpy()}, strict=True)
    with torch.no_grad():
        expected = modules[function](x).numpy()
    (got,) = out.values()
    assert got.shape == expected.shape
    assert rel_error(got, expected) <= 1e-6


def test_default_function_is_the_packages_default(merged):
    path, _, x = merged
    prog = interp.load(path)
    assert prog.function == "a"
    (got,) = prog.run({"x": x.numpy()}).values()
    assert got.shape == (2, 4)


def test_unknown_function_lists_the_functions(merged):
    path, _, _ = merged
    with pytest.raises(InputError, match=r"no function 'c' .*functions are: a, b") as info:
        interp.load(path, function="c")
    assert "\n" not in str(info.value)
