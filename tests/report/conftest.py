"""A real check result (the demo, few samples), shared by the report tests of this folder."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def demo_result():
    from devicefit.check import CheckOptions, run_check

    return run_check(CheckOptions(samples=24))


@pytest.fixture(scope="session")
def demo_report(demo_result):
    from devicefit.report.schema import build_report

    return build_report(demo_result)


MODEL = """
import torch
from torch import nn

def make_model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    return net.eval(), (torch.randn(1, 3, 16, 16),)
"""


@pytest.fixture(scope="session")
def flexible_report(tmp_path_factory):
    """A real report of a model with enumerated input shapes, checked on two ``--target`` devices."""
    from devicefit.check import CheckOptions, run_check
    from devicefit.cli._convert_args import parse_flexible
    from devicefit.report.schema import build_report

    path = tmp_path_factory.mktemp("flex") / "net.py"
    path.write_text(MODEL)
    options = CheckOptions(
        model=f"{path}:make_model",
        samples=2,
        devices=["iphone-12", "iphone-8"],
        flexible=parse_flexible([], ["input=1x3x16x16,1x3x24x24"]),
    )
    return build_report(run_check(options))


@pytest.fixture(scope="session")
def failed_report():
    """A real report of a model that does not convert (three unsupported ops)."""
    from devicefit.check import CheckOptions, run_check
    from devicefit.report.schema import build_report
    from tests.convert.models import spec

    return build_report(run_check(CheckOptions(model=spec("three_unsupported"), samples=2)))
