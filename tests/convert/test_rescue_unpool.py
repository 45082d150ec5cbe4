"""``max_pool2d(return_indices=True)``'s indices (coremltools 9.0 binds none) and ``max_unpool2d`` against PyTorch
through the interpreter (torch.export: tracing ``F.max_unpool2d`` to TorchScript fails in PyTorch itself)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.convert.elementwise_helpers import check_rescued, run_fn


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "ceil_mode"),
    [(2, 2, 0, False), (3, 2, 1, False), (3, 2, 0, True), ((2, 3), (2, 1), (1, 1), False)],
)
def test_max_pool2d_indices(frontend, kernel, stride, padding, ceil_mode):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 8)
    x[0, 0, :2, :2] = 1.5  # a tie: PyTorch names the first tap holding the maximum

    def pool(t):
        return F.max_pool2d(t, kernel, stride, padding, ceil_mode=ceil_mode, return_indices=True)

    check_rescued(pool, (x,), frontend, "max_pool2d_with_indices")


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_max_pool_without_a_stride_on_torch_export(rank):
    # torch.export leaves the default stride out; coremltools' translation required it (failed to convert)
    torch.manual_seed(0)
    x = torch.randn(1, 2, *[6] * rank)
    pool = getattr(F, f"max_pool{rank}d")
    got, expected, _ = run_fn(lambda t: pool(t, 2), (x,), "torch.export")
    assert (got[0] == expected[0]).all()


@pytest.mark.parametrize(("kernel", "stride"), [(2, 2), (3, 2), (2, 1)])
def test_max_unpool2d_after_max_pool2d(kernel, stride):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 9)

    def segnet_step(t):
        pooled, indices = F.max_pool2d(t, kernel, stride, return_indices=True)
        return F.max_unpool2d(pooled * 2, indices, kernel, stride, output_size=t.shape[-2:])

    check_rescued(segnet_step, (x,), "torch.export", "max_unpool2d")


def test_max_unpool2d_fp16():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 6, 6)

    def segnet_step(t):
        pooled, indices = F.max_pool2d(t, 2, return_indices=True)
        return F.max_unpool2d(pooled, indices, 2)

    check_rescued(segnet_step, (x,), "torch.export", "max_unpool2d", rtol=1e-3, precision="fp16")
