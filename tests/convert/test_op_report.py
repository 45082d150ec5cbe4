"""The op report has no false positives: blocking only where a frontend failed; every blocking op once, with file:line."""

from __future__ import annotations

import numpy as np
import torch

from devicefit import interp
from devicefit.convert import ConvertOptions, convert, scan
from tests.convert.helpers import source_of


class InvAiryJ0(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.linalg.inv(x)  # LINE_INV
        b = torch.special.airy_ai(torch.tanh(x) + 2)  # LINE_AIRY
        c = torch.special.bessel_j0(x)  # LINE_J0
        return a.sum() + b.sum() + c.sum()


class ChunkWhere(torch.nn.Module):
    """``chunk`` (TorchScript) and ``where`` with a scalar operand (torch.export's where.ScalarOther)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=-1)
        return torch.where(a > 0, b, 0.0)


def _line(marker: str) -> str:
    lines = open(__file__, encoding="utf-8").read().splitlines()
    return f"test_op_report.py:{next(i for i, line in enumerate(lines, 1) if marker in line)}"


def test_every_blocking_op_once_with_its_line():
    # devicefit inverts a run-time matrix up to 32x32: a 40x40 one is still refused (by devicefit's translation)
    report = scan(source_of(InvAiryJ0(), (torch.randn(40, 40),)))
    by_op = {u.op.split("::")[-1]: u for u in report.unsupported}
    # linalg_inv is in coremltools' op table but the translation refuses this use
    assert set(by_op) == {"linalg_inv", "special_airy_ai", "special_bessel_j0"}
    assert len(report.unsupported) == 3
    assert by_op["linalg_inv"].location == _line("LINE_INV")
    assert by_op["special_airy_ai"].location == _line("LINE_AIRY")
    assert by_op["special_bessel_j0"].location == _line("LINE_J0")
    assert "precompute the inverse" in by_op["linalg_inv"].hint
    assert not report.ok


def test_no_blocking_ops_after_a_successful_conversion():
    source = source_of(ChunkWhere(), (torch.randn(2, 4),))
    report = scan(source)
    assert report.ok and report.working_frontends == ["torchscript", "torch.export"]
    assert report.unsupported == []
    assert all("chunk" not in u.op for u in report.handled)  # chunk is ConstantChunk for coremltools
    for frontend in ("torchscript", "torch.export"):
        result = convert(source, ConvertOptions(precision="fp32", frontend=frontend))
        assert result.scan.unsupported == []
    assert "where.scalarother" in result.scan.rescued  # the export path: rescued, listed as such


class Scaled(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = 2.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale  # a Python constant: baked into the trace


def test_convert_after_scan_does_not_reuse_a_stale_trace():
    module = Scaled()
    source = source_of(module, (torch.ones(2, 3),))
    assert scan(source).ok
    module.scale = 3.0
    result = convert(source, ConvertOptions(precision="fp32", frontend="torchscript"))
    out = next(iter(interp.load(result.mlmodel).run(source.coreml_feeds(source.example_inputs)).values()))
    np.testing.assert_allclose(out, np.full((2, 3), 3.0))
