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
