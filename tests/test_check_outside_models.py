"""`check` on models written the way outside users write them: each test failed before its fix."""

from __future__ import annotations

import textwrap

from devicefit.check import CheckOptions, run_check
from devicefit.cli import main

BOOL_MASK = textwrap.dedent(
    """
    import torch


    class MaskedHead(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(8, 8)

        def forward(self, x, pad):
            scores = self.proj(x).masked_fill(pad[..., None], -1e4)
            return scores.softmax(dim=1)


    def make_model():
        torch.manual_seed(0)
        pad = torch.zeros(2, 6, dtype=torch.bool)
        pad[1, 4:] = True
        return MaskedHead().eval(), (torch.randn(2, 6, 8), pad)
    """
)


def test_bool_mask_input_is_fed_as_the_float_the_converted_model_takes(tmp_path):
    # Core ML has no bool inputs: the converted model declares the mask fp32, and check fed it the bool array
    # (InputError, exit 2, on a model that converts fine).
    path = tmp_path / "masked.py"
    path.write_text(BOOL_MASK)
    result = run_check(CheckOptions(model=f"{path}:make_model", samples=2, devices=["iphone-12"]))
    assert result.convert.ok
    assert result.verdicts["numerics"].status != "fail", result.verdicts["numerics"].reason
    assert result.fp32.outputs  # the comparison ran
    assert main(["check", f"{path}:make_model", "--samples", "2", "--target", "iphone-12"]) in (0, 1)
