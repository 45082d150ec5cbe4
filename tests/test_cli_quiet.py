"""Commands keep stderr for devicefit's own messages: no third-party progress bars or numpy warnings."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

from devicefit.report.terminal_views import run_outputs_table
from tests.helpers import convert

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.mark.slow  # ~7 s: two conversions and a fresh interpreter (tqdm reads its setting on import)
def test_merge_prints_no_coremltools_progress_bars(tmp_path):
    net = torch.nn.Linear(8, 2)
    a, b = tmp_path / "a.mlpackage", tmp_path / "b.mlpackage"
    convert(net, torch.randn(1, 8)).save(str(a))
    convert(net, torch.randn(2, 8)).save(str(b))
    env = {**os.environ, "PYTHONPATH": SRC}
    env.pop("TQDM_DISABLE", None)
    done = subprocess.run(
        [sys.executable, "-m", "devicefit", "merge", str(a), str(b), "-o", str(tmp_path / "m.mlpackage")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "pipeline" not in done.stderr and "passes" not in done.stderr, done.stderr


def test_run_table_of_all_nan_outputs_warns_nothing_and_says_all_nan():
    outputs = {"nan": np.full((2, 3), np.nan, np.float32), "some": np.array([1.0, np.nan, 3.0], np.float32)}
    console = Console(record=True, width=200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "All-NaN slice encountered" would raise here
        console.print(run_outputs_table("t", ["nan", "some"], outputs))
    lines = console.export_text().splitlines()
    nan_row = next(line for line in lines if line.lstrip("│ ").startswith("nan"))
    some_row = next(line for line in lines if line.lstrip("│ ").startswith("some"))
    assert "all NaN" in nan_row and "6" in nan_row
    assert "1" in some_row and "3" in some_row and "2" in some_row and "NaN" not in some_row


MODEL = """
import torch


def make():
    return torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU()).eval(), (torch.randn(1, 8),)
"""


# slow (the fast suite's 15-minute budget, 2026-12-02): 6.2 s: a whole check in a subprocess; the other quiet-output tests here stay fast
@pytest.mark.slow
def test_check_of_a_pytorch_model_prints_none_of_coremltools_import_warnings(tmp_path):
    """coremltools warns at import about its missing macOS proxies and untested torch / scikit-learn versions:
    expected off a Mac, and noise that reads like an error to a user ('Failed to load _MLModelProxy'). They were
    silenced only where devicefit imported coremltools itself first; `check` on a PyTorch model imported it
    through the rescue translations before that, and printed all ten lines."""
    (tmp_path / "m.py").write_text(MODEL)
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run(
        [sys.executable, "-m", "devicefit", "check", "m.py:make", "-o", "out"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for noise in ("Failed to load _", "has not been tested with coremltools", "is not supported. Minimum"):
        assert noise not in done.stderr and noise not in done.stdout, done.stderr
