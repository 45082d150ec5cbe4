"""Liveness on a hand-checked graph, program activation memory, and the device fit table."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from devicefit.analyze.memory import MB, OpNode, fit_table, liveness, program_activation_memory, value_size


def test_liveness_hand_checked():
    # x -> A -> a ; a -> B -> b ; (a, b) -> C -> c ; output c
    ops = [
        OpNode("A", "conv", ["x", "w"], ["a"]),
        OpNode("B", "relu", ["a"], ["b"]),
        OpNode("C", "add", ["a", "b"], ["c"]),
    ]
    sizes = {"x": 100, "a": 200, "b": 50, "c": 10}
    m = liveness(ops, ["x"], ["c"], sizes)
    # op A: x + a; op B: a + b; op C: a + b + c ("w" is a weight, not counted)
    assert m.per_op == [300, 250, 260]
    assert (m.peak_bytes, m.peak_op, m.peak_index) == (300, "A", 0)
    spans = {lt.value: (lt.start, lt.end) for lt in m.lifetimes}
    assert spans == {"x": (0, 0), "a": (0, 2), "b": (1, 2), "c": (2, 2)}


def test_outputs_live_to_the_end_and_peak_in_the_middle():
    # o is an output produced first: it stays live while the rest runs
    ops = [
        OpNode("P", "mul", ["x"], ["o"]),
        OpNode("Q", "mul", ["x"], ["q"]),
        OpNode("R", "exp", ["q"], ["r"]),
        OpNode("S", "sum", ["r"], ["s"]),
    ]
    sizes = {"x": 4, "o": 1000, "q": 64, "r": 64, "s": 4}
    m = liveness(ops, ["x"], ["o", "s"], sizes)
    assert m.per_op == [4 + 1000, 4 + 1000 + 64, 1000 + 64 + 64, 1000 + 64 + 4]
    assert (m.peak_op, m.peak_bytes) == ("R", 1128)


def test_value_size():
    assert value_size((1, 3, 4), "fp16") == (24, True)
    assert value_size((None, 4), "fp32") == (16, False)


def test_program_activation_memory_of_a_converted_model():
    from devicefit import interp
    from tests.helpers import convert

    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AvgPool2d(2))
    ml = convert(conv, torch.ones(1, 1, 8, 8), precision="fp16", target="iOS17")
    prog = interp.load(ml)
    m = program_activation_memory(prog)
    steps = prog.plan.block.steps
    assert len(m.per_op) == len(steps)
    # the conv and relu outputs are 1x8x8x8 fp16 = 1024 bytes each; relu holds both at once
    types = [s.op_type for s in steps]
    relu = types.index("relu")
    assert m.per_op[relu] == 1024 + 1024
    assert m.peak_bytes == max(m.per_op) >= 2048
    assert not m.approximate


def _device(id_, budget, derivation="half the RAM (test)"):
    return SimpleNamespace(
        id=id_, name=id_.upper(), app_memory_budget_mb=budget, budget_derivation=derivation
    )


def test_fit_table():
    devices = [_device("small", 50), _device("mid", 150), _device("big", 300), _device("unknown", None)]
    rows = {r.device: r for r in fit_table(100 * MB, devices)}
    assert rows["small"].fits is False and rows["small"].verdict == "too big"
    assert rows["mid"].fits is True and rows["mid"].verdict == "tight"
    assert rows["mid"].used_fraction == pytest.approx(100 / 150)
    assert rows["big"].verdict == "fits"
    assert rows["unknown"].fits is None and rows["unknown"].verdict == "unknown"
    assert rows["big"].budget_derivation == "half the RAM (test)"


def test_fit_table_uses_the_catalog():
    rows = fit_table(10 * MB)
    iphone12 = next(r for r in rows if r.device == "iphone-12")
    assert iphone12.fits is True and iphone12.budget_mb
    assert iphone12.budget_derivation
