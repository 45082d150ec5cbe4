"""F.interpolate with a non-integer scale_factor (no recompute_scale_factor) against PyTorch, both frontends.

PyTorch then maps output pixels with the given scale (``src = (dst + 0.5) / scale - 0.5``), not with
``in / out`` as Core ML's upsample ops do; coremltools 9.0 refuses bilinear and converts nearest wrongly.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from devicefit import interp
from tests.convert.helpers import convert_and_compare

FRONTENDS = ["torchscript", "torch.export"]


class Resize(torch.nn.Module):
    def __init__(self, **resize: object) -> None:
        super().__init__()
        self.resize = resize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, **self.resize)


CASES = {
    "bilinear_up": {"scale_factor": 1.5, "mode": "bilinear"},
    "bilinear_down": {"scale_factor": 0.7, "mode": "bilinear"},
    "bilinear_mixed": {"scale_factor": (2.0, 1.3), "mode": "bilinear"},
    "bilinear_aligned": {"scale_factor": 1.5, "mode": "bilinear", "align_corners": True},
    "bilinear_recompute": {"scale_factor": 1.5, "mode": "bilinear", "recompute_scale_factor": True},
    "nearest_up": {"scale_factor": 1.7, "mode": "nearest"},
    "nearest_down": {"scale_factor": 0.7, "mode": "nearest"},
}


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("case", CASES)
def test_fractional_scale_matches_torch(case, frontend):
    torch.manual_seed(0)
    # 7 x 9: sizes where 1 / scale and in / out differ, so a recomputed scale would be caught
    result, _ = convert_and_compare(Resize(**CASES[case]), (torch.randn(2, 3, 7, 9),), frontend)
    ours = {"upsample_bilinear2d", "upsample_nearest2d"} & set(result.scan.rescued)
    # align_corners and a recomputed scale map as Core ML does: coremltools' own op
    assert bool(ours) == (case not in ("bilinear_aligned", "bilinear_recompute")), result.scan.rescued


@pytest.mark.parametrize(
    "resize",
    [{"scale_factor": 2.0, "mode": "bilinear"}, {"scale_factor": 2.0, "mode": "nearest"}],
    ids=["bilinear", "nearest"],
)
def test_integer_scale_stays_with_coremltools(resize):
    """Integer scales (1 / scale == in / out) keep coremltools' native upsample op, not devicefit's matmul."""
    result, _ = convert_and_compare(Resize(**resize), (torch.randn(1, 2, 5, 6),))
    assert not {"upsample_bilinear2d", "upsample_nearest2d"} & set(result.scan.rescued)
    ops = {op.op_type for op in interp.load(result.mlmodel).pymil_function.operations}
    assert ops & {"upsample_bilinear", "upsample_nearest_neighbor", "resize"}, ops


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_fractional_scale_in_fp16(mode):
    torch.manual_seed(0)
    convert_and_compare(
        Resize(scale_factor=1.5, mode=mode), (torch.randn(1, 2, 7, 9),), precision="fp16", tol=2e-3
    )


CASES_1D = {
    "linear_up": {"scale_factor": 1.5, "mode": "linear"},
    "linear_down": {"scale_factor": 0.7, "mode": "linear"},
    "linear_aligned": {"scale_factor": 1.5, "mode": "linear", "align_corners": True},
    "nearest_up": {"scale_factor": 1.7, "mode": "nearest"},
    "nearest_down": {"scale_factor": 0.7, "mode": "nearest"},
    "nearest_integer": {"scale_factor": 3.0, "mode": "nearest"},
}


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("case", CASES_1D)
def test_fractional_scale_1d_matches_torch(case, frontend):
    torch.manual_seed(0)
    convert_and_compare(Resize(**CASES_1D[case]), (torch.randn(2, 3, 9),), frontend)
