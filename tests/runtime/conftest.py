"""Small models shared by the runtime tests (converted once per session)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from tests.helpers import convert


class SmallNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 8 * 8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


@pytest.fixture(scope="session")
def small_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return SmallNet().eval()


@pytest.fixture(scope="session")
def small_feeds() -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)}


@pytest.fixture(scope="session")
def small_pkg(tmp_path_factory, small_net, small_feeds):
    path = tmp_path_factory.mktemp("models") / "small.mlpackage"
    convert(small_net, torch.from_numpy(small_feeds["x"])).save(str(path))
    return path


@pytest.fixture(scope="session")
def small_onnx(tmp_path_factory, small_net, small_feeds):
    from devicefit.engines.onnx_engine import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "small.onnx"
    export_onnx(small_net, dict(small_feeds), path)
    return path


@pytest.fixture
def cache(tmp_path):
    from devicefit.engines.cache import SpecializationCache

    return SpecializationCache(tmp_path / "cache")


@pytest.fixture
def fast_thread_switches():
    """Switch threads every 0.1 ms instead of 5 ms: more interleavings per stress round."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(before)
