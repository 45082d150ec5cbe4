"""``F.instance_norm(..., use_input_stats=False)`` (``nn.InstanceNorm2d(track_running_stats=True)`` in eval mode):
coremltools 9.0 normalized with the input's own statistics, ignoring the running ones, with no error (found by
the differential fuzzer, tests/interp/difffuzz.py, seed 2360)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.convert.elementwise_helpers import assert_close_elementwise, run_fn

G = torch.Generator().manual_seed(0)
MEAN, VAR = torch.randn(3, generator=G), torch.rand(3, generator=G) + 0.5
W, B = torch.randn(3, generator=G), torch.randn(3, generator=G)


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 4, 5), (1, 3, 1, 1)])
@pytest.mark.parametrize("affine", [True, False])
def test_running_statistics_are_used(frontend, shape, affine):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1)) * 3 + 1

    def fn(t):
        w, b = (W, B) if affine else (None, None)
        return F.instance_norm(t, MEAN, VAR, w, b, use_input_stats=False, eps=1e-3)

    got, expected, _ = run_fn(fn, (x,), frontend)
    assert_close_elementwise(got[0], expected[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_module_in_eval_mode(frontend):
    norm = torch.nn.InstanceNorm2d(3, affine=True, track_running_stats=True).eval()
    with torch.no_grad():
        norm.running_mean.copy_(MEAN)
        norm.running_var.copy_(VAR)
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    got, expected, _ = run_fn(norm, (x,), frontend)
    assert_close_elementwise(got[0], expected[0], rtol=1e-5, atol=1e-5)
