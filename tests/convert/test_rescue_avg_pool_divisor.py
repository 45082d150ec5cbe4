"""``avg_pool2d(divisor_override=)`` (coremltools 9.0 refuses it) against PyTorch through the interpreter."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.convert.elementwise_helpers import check_rescued, run_fn

FRONTENDS = ["torchscript", "torch.export"]


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "ceil_mode", "divisor"),
    [
        (2, None, 0, False, 3),
        (3, 2, 1, False, 1),
        (3, 2, 1, True, 5),
        ((2, 3), (1, 2), (1, 0), True, 7),
        (3, 3, 0, True, 2),
    ],
)
def test_avg_pool2d_divisor_override(frontend, kernel, stride, padding, ceil_mode, divisor):
    torch.manual_seed(0)
    x = torch.randn(1, 2, 7, 8)

    def pool(t):
        return F.avg_pool2d(t, kernel, stride, padding, ceil_mode=ceil_mode, divisor_override=divisor)

    # the window sum is the box mean times kh * kw, divided by d: a rounding or two from PyTorch's sum / d
    check_rescued(pool, (x,), frontend, "avg_pool2d", rtol=1e-6, atol=1e-6)


def test_avg_pool2d_divisor_override_fp16():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 6, 6)
    check_rescued(
        lambda t: F.avg_pool2d(t, 2, divisor_override=3),
        (x,),
        "torchscript",
        "avg_pool2d",
        3e-3,
        "fp16",
        3e-3,
    )


def test_avg_pool2d_without_divisor_stays_with_coremltools():
    x = torch.randn(1, 2, 6, 6)
    got, expected, rescued = run_fn(lambda t: F.avg_pool2d(t, 2), (x,), "torchscript")
    assert "avg_pool2d" not in rescued
    torch.testing.assert_close(torch.from_numpy(got[0]), torch.from_numpy(expected[0]))
