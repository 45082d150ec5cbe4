"""Shared pytest setup: deterministic, quiet, single-threaded torch (CI has 2 cores and runs 2 workers)."""

from __future__ import annotations

import os
import warnings

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
# NOTE: every interpreter run in the tests checks each value against its declared static shape (a device plans
# from the declared types; interp/run.py); DEVICEFIT_STRICT_TYPES=0 turns it off
os.environ.setdefault("DEVICEFIT_STRICT_TYPES", "1")
warnings.filterwarnings("ignore")


def pytest_configure(config: pytest.Config) -> None:
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    from devicefit._lazy import coremltools

    coremltools()


@pytest.fixture
def ct():
    from devicefit._lazy import coremltools

    return coremltools()
