"""``ScanReport.rescued`` lists only devicefit translations that built a node: an override that hands every node
back to coremltools (``to`` for a cast other than bfloat16) is not listed, after a failed conversion either.

The bug: ``scan()`` and a failed ``convert()`` listed every op kind whose registry entry is devicefit's (``to`` on
any model with a ``.to()`` cast), so ``check`` / the scan said "rescued: to" for conversions that failed.
"""

from __future__ import annotations

import pytest
import torch

from devicefit.convert import ConversionError, ConvertOptions, convert, scan
from tests.convert.helpers import source_of


class CastThenRefused(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.to(torch.float16).to(torch.float32)  # a plain cast: coremltools' own translation
        return torch.special.bessel_j0(y) + torch.lgamma(
            y.abs() + 1
        )  # bessel_j0: refused; lgamma: devicefit's


class CastOnly(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.float16).to(torch.float32) * 2


def test_scan_of_a_failing_model_does_not_list_delegated_overrides():
    report = scan(source_of(CastThenRefused(), (torch.rand(2, 3),)))
    assert not report.ok
    assert "to" not in report.rescued, report.rescued
    assert "lgamma" in report.rescued  # devicefit's own translation of an op coremltools lacks


def test_failed_conversion_does_not_list_delegated_overrides():
    with pytest.raises(ConversionError) as info:
        convert(source_of(CastThenRefused(), (torch.rand(2, 3),)), ConvertOptions(precision="fp32"))
    assert "to" not in info.value.scan.rescued, info.value.scan.rescued


def test_scan_of_a_converting_model_lists_only_translations_used():
    report = scan(source_of(CastOnly(), (torch.rand(2, 3),)))
    assert report.ok
    assert report.rescued == [], report.rescued
