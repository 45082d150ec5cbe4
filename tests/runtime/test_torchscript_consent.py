"""The torch and onnxruntime engines refuse TorchScript that uses custom C++ classes unless trust_code=True."""

from __future__ import annotations

import pytest
import torch

from devicefit.engines import create
from devicefit.errors import ModelLoadError
from tests.helpers import custom_class_torchscript


@pytest.mark.parametrize("engine", ["torch", "onnxruntime"])
def test_custom_class_torchscript_needs_consent(tmp_path, engine, monkeypatch):
    crafted = custom_class_torchscript(tmp_path)
    loaded = []
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: loaded.append(a) or torch.nn.Linear(4, 2))
    options = {"example_inputs": {"input": torch.zeros(1, 4).numpy()}, "cache": False}
    with pytest.raises(
        ModelLoadError, match=r"custom class torch\.classes\.devicefit_test\.Marker.*--trust-code"
    ):
        create(engine, crafted, **options).load()
    assert loaded == []  # refused before torch read the file
    create(engine, crafted, trust_code=True, **options).load()
    assert len(loaded) == 1
