"""Peak RSS of `check` on a large-activation model, in a fresh process (run by tests/test_check_memory.py).

Usage: python tests/_memory_probe.py CHANNELS HEIGHT WIDTH SAMPLES. Prints one JSON line: the RSS increase over
a warmed-up baseline (imports and a first tiny check done), and the report's activation peak and weights.
"""

from __future__ import annotations

import gc
import json
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

MODEL = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.expand = nn.Conv2d(3, {c}, 1)
            self.dw = nn.Conv2d({c}, {c}, 3, padding=1, groups={c})
            self.head = nn.Linear({c}, 8)

        def forward(self, x):
            y = torch.relu(self.expand(x))
            y = y * 0.5 + 1.0
            y = torch.sigmoid(self.dw(y))
            return self.head(y.mean(dim=(2, 3)))


    def make_model():
        return Net().eval(), torch.zeros(1, 3, {h}, {w})
    """
)


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _peak_above_baseline(work: Callable[[], object]) -> tuple[int, object]:
    """RSS peak while ``work`` runs, above the RSS just before it (sampled every millisecond)."""
    gc.collect()
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.001)

    base = _rss()
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        result = work()
    finally:
        done.set()
        thread.join()
    return peak[0] - base, result


def _pytorch_forward_peak(path: Path) -> int:
    """What PyTorch itself needs to run the model once in fp32 (no_grad): its activations as held on this host."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("probe_model", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model, example = module.make_model()
    with torch.no_grad():
        model(example)  # first call: lazy allocations, not activations
        peak, _ = _peak_above_baseline(lambda: model(example))
    return peak  # model and activations go with this frame


def main() -> None:
    channels, height, width, samples = (int(a) for a in sys.argv[1:5])
    from devicefit.check import CheckOptions, run_check

    root = Path(tempfile.mkdtemp())
    (root / "tiny.py").write_text(MODEL.format(c=4, h=8, w=8))
    (root / "big.py").write_text(MODEL.format(c=channels, h=height, w=width))
    run_check(CheckOptions(model=str(root / "tiny.py"), samples=1))  # imports and lazy loads happen here
    forward = _pytorch_forward_peak(root / "big.py")
    increase, result = _peak_above_baseline(
        lambda: run_check(CheckOptions(model=str(root / "big.py"), samples=samples))
    )
    print(
        json.dumps(
            {
                "increase": increase,
                "pytorch_forward_peak": forward,
                "report_peak": result.memory.peak_bytes,
                "weights": result.size.weight_bytes,
                "fp32_activation_peak": 2 * result.memory.peak_bytes,  # fp16 package: 2 bytes per element
                "seconds": result.timings["total"],
            }
        )
    )


if __name__ == "__main__":
    main()
