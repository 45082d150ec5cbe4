"""The bundled demo: shipped weights, held-out accuracy, and `devicefit check` with no model, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from devicefit import demo
from devicefit.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_weights_are_small_plain_npz():
    path = demo.weights_path()
    assert path.stat().st_size < 1_000_000
    with np.load(path, allow_pickle=False) as npz:  # raises if anything needs unpickling
        names = set(npz.files)
    assert {"conv1.weight", "conv2.weight", "fc.weight", "fc.bias"} <= names


def test_demo_module_is_trained():
    module = demo.load_module()
    _, _, x_te, y_te = demo.digits_split()
    with torch.no_grad():
        acc = float((module(torch.from_numpy(x_te)).argmax(1).numpy() == y_te).mean())
    assert acc > 0.9
    held = demo.held_out(5)
    assert len(held.feeds) == 5 and held.feeds[0][demo.INPUT_NAME].shape == demo.INPUT_SHAPE


def test_check_without_model_runs_the_demo(tmp_path, capsys):
    out = tmp_path / "demo-out"
    assert main(["check", "-o", str(out), "--force", "--samples", "120"]) == 0
    stdout = capsys.readouterr().out
    for name in ("report.json", "report.html", "model.mlpackage"):
        assert (out / name).exists()
        assert str(out / name) in stdout
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["labels"] is True and report["data"]["samples"] == 120
    assert report["summary"]["fp16.accuracy"] > 0.9
    assert report["summary"]["reference.accuracy"] > 0.9
    assert report["numerics"]["trained"]["looks_untrained"] is False
    assert {v["status"] for v in report["verdicts"].values()} <= {"pass", "warn"}
    assert "iphone-12" in report["summary"]["memory.fits"]
    # --force was given: a second run overwrites; without it, it refuses
    assert main(["check", "-o", str(out), "--samples", "2"]) == 2


def test_demo_rejects_input_declarations(capsys):
    assert main(["check", "--input", "x:1x3:float32"]) == 2
    assert "needs a MODEL" in capsys.readouterr().err


@pytest.mark.slow
def test_training_script_is_seeded(tmp_path):
    outs = []
    for i in range(2):
        path = tmp_path / f"w{i}.npz"
        subprocess.run([sys.executable, str(ROOT / "scripts/train_demo.py"), "--out", str(path), "--epochs", "2"],
                       check=True, capture_output=True)  # fmt: skip
        with np.load(path, allow_pickle=False) as npz:
            outs.append({k: npz[k] for k in npz.files})
    assert outs[0].keys() == outs[1].keys()
    assert all(np.array_equal(outs[0][k], outs[1][k]) for k in outs[0])
