"""``check`` on the round-7 outside models (tests/corpus/outside7*.py): each test failed before its fix."""

from __future__ import annotations

import textwrap

from devicefit.check import CheckOptions, run_check

HEATMAP = textwrap.dedent(
    """
    import torch


    class GaussianHeatmap(torch.nn.Module):
        # keypoint heatmaps rendered in the model: exp(-squared pixel distance / 2 sigma^2) on a 300 x 300 grid
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.head = torch.nn.Linear(8, 4)

        def forward(self, feats):
            centers = torch.sigmoid(self.head(feats)).view(-1, 2, 2) * 300
            ys, xs = torch.meshgrid(torch.arange(300.0), torch.arange(300.0), indexing="ij")
            d2 = (xs - centers[..., 0, None, None]) ** 2 + (ys - centers[..., 1, None, None]) ** 2
            return torch.exp(-d2 / 72.0)


    def make_model():
        return GaussianHeatmap().eval(), torch.randn(1, 8, generator=torch.Generator().manual_seed(0))
    """
)


def test_an_overflow_that_exp_takes_to_zero_as_fp32_does_is_not_a_numerics_failure(tmp_path):
    # far pixels' squared distances (up to 1.8e5) are beyond fp16's range: inf in fp16, and exp(-inf) = 0 where
    # fp32's exp(-2500) = 0; the heatmap is right in fp16, yet check said "FAIL: fp16 compute precision loss;
    # fp16 overflow at ... d2" (the same wrong FAIL on NeRF's exp(-sigma * 1e10) volume rendering)
    path = tmp_path / "heatmap.py"
    path.write_text(HEATMAP)
    result = run_check(
        CheckOptions(model=f"{path}:make_model", samples=2, devices=["iphone-12"], repair=False)
    )
    numerics = result.verdicts["numerics"]
    assert numerics.status in ("pass", "warn"), numerics.reason
    assert "fp16 overflow" not in numerics.reason, numerics.reason
