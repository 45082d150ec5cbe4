"""`check` memory scales with the model's activations (issue 12): fp16 divergence is compared op by op as the
fp32 and fp16 runs go, large fp16 outputs are rounded in place, so no run's intermediates are all held at once.

X, the model's activations, is measured in the probe: the RSS peak of one PyTorch fp32 forward (no_grad) of the
same model, the least any check that runs the PyTorch reference can use. The report's activation peak is the
Core ML program's liveness at the package's precision (fp16: 2 bytes per element); PyTorch evaluates
``y * 0.5 + 1.0`` with three full tensors alive, so for the issue's 768x512x512 model its own forward already
takes 3.0x the report's fp16 figure (2,320 MiB vs 768 MiB).

Measured (2026-11-30): 768x512x512 check peak 3,100 MiB = 1.34x the PyTorch forward (before: 11.8 GB at the
issue, 3,469 MiB at the last session); 64x512x512: 262 MiB = 1.26x. The peak is torch.jit.trace in conversion
(3,073 MiB alone: the tracer keeps one more activation alive than eager).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).with_name("_memory_probe.py")

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc")


def _probe(channels: int, height: int, width: int, samples: int) -> dict:
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, str(PROBE), str(channels), str(height), str(width), str(samples)],
        capture_output=True, text=True, env=env, check=True, timeout=1800,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def _assert_within_3x(m: dict) -> None:
    # the issue's goal: <= 3X + the weights, X = the model's activations as PyTorch holds them
    x = m["pytorch_forward_peak"]
    assert m["increase"] <= 3 * x + m["weights"], (
        f"check peaked {m['increase'] / 2**20:.0f} MiB above the baseline, X = {x / 2**20:.0f} MiB"
    )
    # and within 3x the program's fp32 liveness (the report's figure at 4 bytes per element)
    assert m["increase"] <= 3 * m["fp32_activation_peak"] + m["weights"]


def test_check_of_a_large_activation_model_peaks_within_3x_its_activations():
    _assert_within_3x(_probe(64, 512, 512, 1))


@pytest.mark.slow
def test_issue_case_768x512x512():
    _assert_within_3x(_probe(768, 512, 512, 1))
