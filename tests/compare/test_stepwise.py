"""The paired fp32/fp16 run: same outputs as Program.run, same per-op comparison, dead values freed."""

from __future__ import annotations

import numpy as np
import torch

from devicefit.compare.divergence import DivergenceTracker, find_divergence
from devicefit.compare.stepwise import last_reads, paired_run


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        z = (y * 300.0) * 300.0  # overflows fp16
        return self.fc(y.mean(dim=(2, 3))), z.sum(dim=(1, 2, 3)) / 1e6


def _program():
    from devicefit import interp
    from tests.helpers import convert

    net = _Net().eval()
    return interp.load(convert(net, torch.ones(1, 3, 8, 8), precision="fp16", target="iOS17"))


def test_paired_run_matches_program_run_and_find_divergence():
    prog = _program()
    rng = np.random.default_rng(0)
    samples = [{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(2)]
    tracker = DivergenceTracker(prog)
    full32, full16 = [], []
    for feeds in samples:
        out32, out16 = tracker.add_sample(feeds)
        r32 = prog.run(feeds, "fp32", intermediates=True)
        r16 = prog.run(feeds, "fp16", intermediates=True)
        full32.append(r32)
        full16.append(r16)
        for o in prog.outputs:
            np.testing.assert_array_equal(out32[o.name], r32[o.name])
            np.testing.assert_array_equal(out16[o.name], r16[o.name])
            assert out16[o.name].dtype == r16[o.name].dtype
    streamed, held = tracker.result(), find_divergence(prog, full32, full16)
    assert [(o.op, o.rel_error, o.overflow, o.nonfinite, o.underflow) for o in streamed.ops] == [
        (o.op, o.rel_error, o.overflow, o.nonfinite, o.underflow) for o in held.ops
    ]
    assert streamed.overflow_ops and [o.op for o in streamed.overflow_ops] == [
        o.op for o in held.overflow_ops
    ]
    assert tracker.observed_shapes["x"] == (1, 3, 8, 8)


def test_dead_values_are_freed_as_the_run_goes():
    prog = _program()
    last = last_reads(prog)
    feeds = {"x": np.ones((1, 3, 8, 8), dtype=np.float32)}
    outputs: dict = {}
    seen_alive = []
    gen = paired_run(prog, feeds, outputs)
    for paired in gen:
        # a value read for the last time by an earlier op is no longer held by either run
        frame = gen.gi_frame
        assert frame is not None
        runners = frame.f_locals["runners"]
        stale = [n for n, i in last.items() if i < paired.index and n in runners["fp32"].env]
        stale = [n for n in stale if n not in prog.plan.constants and n not in {o.name for o in prog.outputs}]
        assert not stale, stale
        seen_alive.append(len(runners["fp32"].env) - len(prog.plan.constants))
    assert set(outputs) == {"fp32", "fp16"}
    assert max(seen_alive) < len(prog.plan.block.steps)  # never every value at once
