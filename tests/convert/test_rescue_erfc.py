"""``torch.erfc`` (coremltools 9.0 has none) against PyTorch through the interpreter, the tail included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.convert.elementwise_helpers import check_rescued, run_fn

FRONTENDS = ["torchscript", "torch.export"]


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_erfc_keeps_relative_accuracy_in_the_tail(frontend):
    x = torch.cat(
        [torch.linspace(-10, 9.3, 4001), torch.tensor([0.0, -0.0, 1e-30, float("inf"), -float("inf")])]
    )
    # measured 5.8e-7 relative at most (Numerical Recipes' fit is within 1.2e-7; a few fp32 roundings more)
    check_rescued(torch.erfc, (x,), frontend, "erfc", rtol=7e-7)


def test_erfc_nan_and_underflow():
    x = torch.tensor([float("nan"), 9.8, 10.05, 10.5, 30.0])
    got, expected, _ = run_fn(torch.erfc, (x,), "torchscript")
    assert np.isnan(got[0][0])
    # denormal results (PyTorch's too) carry few digits: compared absolutely
    np.testing.assert_allclose(got[0][1:], expected[0][1:], rtol=0, atol=1e-44)


def test_erfc_of_ints_and_fp16():
    check_rescued(
        torch.erfc, (torch.tensor([0, 1, 3, -2], dtype=torch.int32),), "torchscript", "erfc", rtol=7e-7
    )
    # fp16, where erfc is a normal fp16 (>= 6.1e-5, x <= 2.8): the exponent -z² + P(t) rounds in fp16, an error
    # growing with z² (measured 5.4e-3 relative at most; beyond, results are fp16 subnormals with few bits)
    x = torch.linspace(-3, 2.8, 59)
    check_rescued(torch.erfc, (x,), "torchscript", "erfc", rtol=1e-2, precision="fp16")
