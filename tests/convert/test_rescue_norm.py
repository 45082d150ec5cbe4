"""``nn.RMSNorm``: coremltools 9.0 added eps to a mean square scaled by max|x|^2 (a wrong eps, silently)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devicefit import interp
from devicefit.convert import ConvertOptions, convert
from tests.convert.helpers import convert_and_compare, source_of


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
@pytest.mark.parametrize("eps", [None, 1e-6])
@pytest.mark.parametrize("scale", [1e-3, 300.0])
def test_rms_norm_matches_pytorch_at_any_scale(scale, eps, frontend):
    # coremltools: 61% off at |x| ~ 1e-3 with eps 1e-6, and eps=None taken as 1e-5
    torch.manual_seed(0)
    norm = torch.nn.RMSNorm(8, eps=eps)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(3, 5, 8) * scale
    x[0, 0] = 0.0  # a padded position: PyTorch gives 0
    result, _ = convert_and_compare(norm.eval(), (x,), frontend, tol=1e-5)
    assert "rms_norm" in result.scan.rescued


def test_rms_norm_does_not_overflow_in_fp16():
    torch.manual_seed(0)
    norm = torch.nn.RMSNorm([4, 8], eps=1e-6).eval()
    x = torch.randn(2, 4, 8) * 3000.0  # x^2 is far beyond fp16
    source = source_of(norm, (x,))
    program = interp.load(convert(source, ConvertOptions(precision="fp16")).mlmodel)
    (got,) = program.run(source.coreml_feeds(source.example_inputs), precision="fp16").values()
    expected = norm(x).detach().numpy()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, atol=5e-3 * np.abs(expected).max())


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
@pytest.mark.parametrize("shape", [(4, 5), (3, 4, 5)])
def test_rms_norm_over_several_trailing_axes(shape, frontend):
    """Listed as refused by an earlier fuzz round; it converts (the override reduces over every trailing axis)."""
    from tests.convert.elementwise_helpers import check_rescued

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 5, generator=gen)
    weight = torch.rand(*shape, generator=gen) + 0.5
    check_rescued(
        lambda t: torch.nn.functional.rms_norm(t, shape, weight), (x,), frontend, "rms_norm", rtol=1e-5
    )
    check_rescued(
        lambda t: torch.nn.functional.rms_norm(t, shape),
        (x,),
        frontend,
        "rms_norm",
        precision="fp16",
        rtol=2e-3,
        atol=2e-3,
    )
