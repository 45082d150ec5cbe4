"""A conversion failure's verdict names where each unsupported op is, not only which: the reason read
"1 unsupported op(s): aten::linalg_eigh (where and what to do: see below)", and below was a table the JSON
report's reader (CI, a script) does not see."""

from __future__ import annotations

import textwrap

from devicefit.check import CheckOptions, run_check

EIGH = textwrap.dedent(
    """
    import torch


    class Spectral(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(4, 4)

        def forward(self, x):
            h = self.proj(x)
            values = torch.linalg.eigvalsh(h.transpose(-1, -2) @ h)  # LINE_EIGH
            return values


    def make_model():
        return Spectral().eval(), torch.randn(2, 4, 4)
    """
)


def test_the_convert_verdict_names_each_unsupported_ops_line(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(EIGH)
    result = run_check(CheckOptions(model=f"{path}:make_model", samples=2, repair=False))
    verdict = result.verdicts["convert"]
    assert verdict.status == "fail", verdict.reason
    line = next(i for i, text in enumerate(EIGH.splitlines(), 1) if "LINE_EIGH" in text)
    assert verdict.reason.startswith("1 unsupported op(s): aten::"), verdict.reason
    assert f"model.py:{line}" in verdict.reason, verdict.reason
