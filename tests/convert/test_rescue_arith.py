"""``torch.fmod``: coremltools 9.0 had no translation."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

from devicefit import interp
from devicefit.convert import ConvertOptions, convert
from devicefit.sources import load_source

FMOD = textwrap.dedent(
    """
    import torch


    class Wrap(torch.nn.Module):
        def forward(self, x, n):
            return torch.fmod(x, 0.7), torch.fmod(x, -1.3), torch.fmod(n, 3), torch.fmod(x, x.flip(-1) + 5.0)


    def make_model():
        torch.manual_seed(0)
        return Wrap().eval(), (torch.randn(2, 10) * 3, torch.randint(-20, 20, (2, 10)))
    """
)


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_fmod_keeps_the_sign_of_the_dividend(tmp_path, frontend):
    path = tmp_path / "wrap.py"
    path.write_text(FMOD)
    source = load_source(f"{path}:make_model")
    result = convert(source, ConvertOptions(precision="fp32", frontend=frontend))
    assert "fmod" in result.scan.rescued
    outputs = interp.load(result.mlmodel).run(source.coreml_feeds(source.example_inputs), precision="fp32")
    for name, expected in source.reference(source.example_inputs).items():
        np.testing.assert_allclose(outputs[name], expected, atol=1e-5, err_msg=name)


class Reciprocals(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # `c / x` traces as reciprocal(x) * c (Tensor.__rtruediv__)
        return torch.reciprocal(x), 1.0 / x, 3.0 / (x * x)


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_reciprocal_is_exact_not_core_mls_inverse_with_its_epsilon(frontend):
    # coremltools maps reciprocal to MIL inverse, whose epsilon defaults to 1e-4: 1 / (x + 1e-4), 9% off at
    # x = 1e-3, silently (the interpreter computes what Core ML computes)
    from tests.convert.helpers import convert_and_compare

    x = torch.tensor([[1e-3, -2e-3, 0.01, 0.5, 1.0, -1.0, 7.0, 1e4]])
    convert_and_compare(Reciprocals(), (x,), frontend, tol=1e-6)


class IntegerDivisions(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor):
        return (
            a // 4,
            torch.floor_divide(a, b),
            torch.div(a, -3, rounding_mode="floor"),
            torch.div(a, b, rounding_mode="trunc"),
            torch.div(a.float(), 2.5, rounding_mode="floor"),  # floats stay with coremltools
        )


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_integer_division_stays_integer(frontend):
    # coremltools cast these to fp32: right values, wrong dtype (an index computed with // stopped being one)
    from tests.convert.elementwise_helpers import assert_close_elementwise, assert_same_integers, run_fn

    a = torch.tensor([[-9, -8, -7, -1, 0, 1, 5, 7, 8, 100]], dtype=torch.int32)
    b = torch.tensor([[4, -4, 3, -3, 2, -2, 7, -7, 1, -1]], dtype=torch.int32)
    got, expected, rescued = run_fn(IntegerDivisions(), (a, b), frontend)
    assert {"floor_divide", "div"} & set(rescued)
    for g, e in zip(got[:4], expected[:4]):
        assert g.dtype.kind == "i"
        assert_same_integers(g, e)
    assert_close_elementwise(got[4], expected[4], rtol=0)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_integer_fmod_stays_exact_in_an_fp16_package(precision):
    """Integer fmod went through fp32 ops, which the fp16 pass made fp16: integers past 2048 and 1 / 5 rounded,
    so fmod(prod(ints), 5) gave 0 where PyTorch gives -4 (differential fuzzer seed 2368). Integer ops now."""
    from tests.convert.elementwise_helpers import check_rescued

    n = torch.tensor([[-7, 3, 9, -9], [2051, -4099, 65541, 5]])
    check_rescued(lambda t: torch.fmod(t, 5), (n,), "torchscript", "fmod", precision=precision)
    check_rescued(lambda t: torch.fmod(t, -3), (n,), "torch.export", "fmod", precision=precision)
    check_rescued(lambda t: torch.fmod(t, t.flip(-1) + 20), (n,), "torchscript", "fmod", precision=precision)
