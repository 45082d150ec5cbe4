"""A process that ends while async requests still run on worker threads exits cleanly.

The workers are daemon threads: a script whose ``asyncio.run`` returned with requests still in engine calls (the
loop cancels them, the calls go on) ended while a worker was inside torch, and the C++ runtime aborted the
process: 'terminate called without an active exception', exit 134, in 5 runs of 5.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import asyncio
import numpy as np, torch, devicefit

net = torch.nn.Sequential(*[torch.nn.Linear(512, 512) for _ in range(40)]).eval()
x = {"x": np.random.randn(64, 512).astype(np.float32)}
model = devicefit.load(net, engine="torch", example_inputs=x, max_in_flight=2, inline_below_s=None)
model.predict(x)


async def main():
    tasks = [asyncio.ensure_future(model.predict_async(x)) for _ in range(8)]
    await asyncio.sleep(0.002)  # leaves with requests on the workers: asyncio.run cancels the tasks


asyncio.run(main())
print("exiting")
"""


def test_a_process_ending_with_requests_on_workers_exits_cleanly(tmp_path):
    script = tmp_path / "ends_mid_call.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-500:])
    assert "exiting" in done.stdout and "terminate called" not in done.stderr
