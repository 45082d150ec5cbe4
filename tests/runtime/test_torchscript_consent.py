"""The torch and onnxruntime engines refuse TorchScript that uses custom C++ classes unless trust_code=True."""

from __future__ import annotations

import zipfile

import pytest
import torch

from devicefit.engines import create
from devicefit.errors import ModelLoadError


@pytest.mark.parametrize("engine", ["torch", "onnxruntime"])
def test_custom_class_torchscript_needs_consent(tmp_path, engine, monkeypatch):
    plain = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(4, 2)), str(plain))
    crafted = tmp_path / "custom.pt"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(crafted, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if "/code/" in info.filename and info.filename.endswith(".py"):
                data += b"\n  _cls : __torch__.torch.classes.devicefit_test.Marker\n"
            dst.writestr(info, data)
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
