"""A handle for a model file that does not exist fails when it is made, not at the first request (a typo in a
server's model path surfaced only when traffic arrived); loading stays lazy for files that exist."""

from __future__ import annotations

import pytest

import devicefit
from devicefit.errors import ModelLoadError


@pytest.mark.parametrize("engine", ["auto", "interp", "onnxruntime", "torch"])
def test_a_missing_model_path_fails_at_load(tmp_path, engine):
    with pytest.raises(ModelLoadError, match="model not found"):
        devicefit.load(tmp_path / "typo.mlpackage", engine=engine)
    with pytest.raises(ModelLoadError, match="model not found"):
        devicefit.load(str(tmp_path / "typo.onnx"), engine=engine)


def test_an_existing_model_still_loads_lazily(tmp_path):
    import torch

    from tests.helpers import convert

    package = tmp_path / "m.mlpackage"
    convert(torch.nn.Linear(4, 2), torch.zeros(1, 4), target="iOS18").save(str(package))
    handle = devicefit.load(package, engine="interp")
    assert not handle.loaded
