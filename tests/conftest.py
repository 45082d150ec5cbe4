"""Shared pytest setup: deterministic, quiet, single-threaded torch (CI has 2 cores and runs 2 workers)."""

from __future__ import annotations

import os
import warnings

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
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
