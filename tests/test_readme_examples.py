"""The README's Python examples run as written, on a small model standing in for the user's.

They are the library's front door: a renamed argument or a moved function would break every user who copied
them, and no other test reads them. Each ``python`` block runs in a fresh folder holding what it names
(``model.py:make_model``, ``val.npz``, ``model.mlpackage``, an input ``x``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MODEL = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.head = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.head(self.conv(x).relu().mean((2, 3)))


def make_model():
    torch.manual_seed(0)
    return Net().eval(), (torch.randn(1, 3, 16, 16),)
"""


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_the_readme_has_python_examples():
    assert len(_blocks()) >= 2


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_a_readme_example_runs_as_written(index, tmp_path, monkeypatch, capsys):
    from tests.helpers import convert

    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.py").write_text(MODEL)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    make_model = importlib.import_module("model").make_model
    net, inputs = make_model()
    convert(net, inputs, input_names=["x"]).save(str(tmp_path / "model.mlpackage"))
    x = inputs[0].numpy()
    np.savez(
        tmp_path / "val.npz", x=np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32)
    )
    scope: dict = {"x": x}
    exec(compile(_blocks()[index], f"README.md python block {index + 1}", "exec"), scope)
    printed = capsys.readouterr().out
    assert printed.strip()  # each block prints what it shows
    if "run_check" in _blocks()[index]:
        assert (tmp_path / "small.mlpackage" / "Manifest.json").is_file()
        assert "'convert': {'status': 'pass'" in printed
        assert set(scope["outputs"]) and all(v.shape == (1, 10) for v in scope["outputs"].values())
    else:  # the interpreter's: outputs, every intermediate value beside them, the compiled path's outputs
        outputs = {o.name for o in scope["prog"].outputs}
        assert set(scope["out"]) == outputs and outputs < set(scope["every"])
        assert re.search(r"input +x: fp32\[1x3x16x16\]", printed)
