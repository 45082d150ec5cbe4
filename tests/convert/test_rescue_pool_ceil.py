"""1-D / 2-D max and average pooling with ``ceil_mode=True`` against PyTorch through the interpreter.

coremltools 9.0 hands ``ceil_mode`` to MIL's ``max_pool`` / ``avg_pool``, whose output size is
``ceil((n + 2p - k) / s) + 1`` without PyTorch's rule that the last window must start inside the input or its
left padding: ``max_pool1d(x[..., 4], 1, stride=2, ceil_mode=True)`` gave 3 values where PyTorch gives 2 (the
third a window of padding only, ``-inf``), and MIL's average excludes the ceil overflow *and* the explicit
padding, where PyTorch's ``count_include_pad=True`` counts the padding (coremltools issue #2772). Found by the
differential fuzzer (tests/interp/difffuzz.py, seeds 350 and 402).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.convert.elementwise_helpers import check_rescued, run_fn

FRONTENDS = ["torchscript", "torch.export"]
# (input length, kernel, stride, padding): each has a last ceil-mode window PyTorch drops (it would start at
# or past n + padding), some also a kept window that overflows the padded input
CASES = [(4, 1, 2, 0), (5, 1, 3, 0), (7, 3, 4, 1), (3, 2, 2, 1), (9, 2, 4, 1)]


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(("size", "kernel", "stride", "padding"), CASES)
def test_max_pool1d_ceil_mode(frontend, size, kernel, stride, padding):
    x = torch.randn(2, 3, size, generator=torch.Generator().manual_seed(size))
    check_rescued(
        lambda t: F.max_pool1d(t, kernel, stride, padding, ceil_mode=True), (x,), frontend, "max_pool1d"
    )


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(("size", "kernel", "stride", "padding"), CASES)
def test_max_pool2d_ceil_mode(frontend, size, kernel, stride, padding):
    x = torch.randn(1, 2, size, size + 1, generator=torch.Generator().manual_seed(size))

    def pool(t):
        return F.max_pool2d(t, (kernel, 2), (stride, 2), (padding, 1), ceil_mode=True)

    check_rescued(pool, (x,), frontend, "max_pool2d")


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("include_pad", [True, False])
@pytest.mark.parametrize(("size", "kernel", "stride", "padding"), CASES)
def test_avg_pool1d_ceil_mode(frontend, size, kernel, stride, padding, include_pad):
    x = torch.randn(2, 3, size, generator=torch.Generator().manual_seed(size))

    def pool(t):
        return F.avg_pool1d(t, kernel, stride, padding, ceil_mode=True, count_include_pad=include_pad)

    check_rescued(pool, (x,), frontend, "avg_pool1d", rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("include_pad", [True, False])
@pytest.mark.parametrize(("size", "kernel", "stride", "padding"), CASES)
def test_avg_pool2d_ceil_mode(frontend, size, kernel, stride, padding, include_pad):
    x = torch.randn(1, 2, size, size + 2, generator=torch.Generator().manual_seed(size))

    def pool(t):
        return F.avg_pool2d(
            t, (kernel, 3), (stride, 2), (padding, 1), ceil_mode=True, count_include_pad=include_pad
        )

    check_rescued(pool, (x,), frontend, "avg_pool2d", rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("op", ["max", "avg"])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pool_without_a_dropped_window_stays_with_coremltools(op, ceil_mode):
    # 7 values, kernel 2, stride 3: the ceil-mode window at 6 starts inside the input, so PyTorch keeps it
    x = torch.randn(1, 2, 7, 7)
    fn = getattr(F, f"{op}_pool2d")
    got, expected, rescued = run_fn(lambda t: fn(t, 2, 3, 0, ceil_mode=ceil_mode), (x,), "torchscript")
    assert f"{op}_pool2d" not in rescued
    torch.testing.assert_close(torch.from_numpy(got[0]), torch.from_numpy(expected[0]))


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("op", ["max", "avg"])
def test_pool3d_ceil_mode_drops_the_last_window(frontend, op):
    # the difffuzz seed 167 case: 6 values, kernel 1, stride 2: the ceil-mode window at 6 would start past the
    # input, so PyTorch gives 3 values; coremltools' 3-D pad adjustment kept it (4 values)
    x = torch.randn(1, 1, 7, 5, 6, generator=torch.Generator().manual_seed(3))
    fn = getattr(F, f"{op}_pool3d")
    kwargs = {"count_include_pad": False} if op == "avg" else {}

    def pool(t):
        return fn(t, (3, 1, 1), (1, 1, 2), (1, 0, 0), ceil_mode=True, **kwargs)

    check_rescued(pool, (x,), frontend, f"{op}_pool3d", rtol=1e-6, atol=1e-6)
