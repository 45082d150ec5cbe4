"""``torch.var`` / ``torch.std`` with ``correction`` other than 0 and 1: coremltools 9.0 read the correction as
``unbiased=True`` (TorchScript) or dropped the keyword (torch.export), dividing by ``N - 1`` whatever the
correction, with no error (found by the differential fuzzer, tests/interp/difffuzz.py, seed 2394)."""

from __future__ import annotations

import pytest
import torch

from tests.convert.elementwise_helpers import assert_close_elementwise, run_fn


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
@pytest.mark.parametrize("name", ["var", "std"])
@pytest.mark.parametrize("correction", [0, 1, 2, 0.5])
def test_correction(frontend, name, correction):
    x = torch.randn(4, 3, 5, generator=torch.Generator().manual_seed(0))
    fn = getattr(torch, name)
    got, expected, _ = run_fn(
        lambda t: (fn(t, [0, 2], correction=correction, keepdim=True), fn(t, 1, correction=correction)),
        (x,),
        frontend,
    )
    for g, e in zip(got, expected):
        assert_close_elementwise(g, e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_unbiased_flag_still_works(frontend):
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
    got, expected, _ = run_fn(lambda t: (torch.var(t, 1, unbiased=False), torch.std(t)), (x,), frontend)
    for g, e in zip(got, expected):
        assert_close_elementwise(g, e, rtol=1e-5, atol=1e-6)


def test_std_of_every_element_is_unbiased():
    # TorchScript traces torch.std(x) as aten::std(x, None, None, False); coremltools read the None correction as
    # unbiased=False and divided by N
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
    got, expected, rescued = run_fn(lambda t: (torch.std(t), torch.var(t)), (x,), "torchscript")
    assert {"std", "var"} <= set(rescued), rescued
    for g, e in zip(got, expected):
        assert_close_elementwise(g, e, rtol=1e-5, atol=1e-6)
