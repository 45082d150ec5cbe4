"""First divergent op, fp16 overflow / underflow attribution, and the untrained-model warning."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from devicefit.compare.divergence import find_divergence, looks_untrained


def _program(ops):
    steps = [
        SimpleNamespace(
            name=n, op_type=t, outputs=[v], ctx=SimpleNamespace(output_dtypes=["fp16"]), reads=lambda: []
        )
        for n, t, v in ops
    ]
    return SimpleNamespace(plan=SimpleNamespace(block=SimpleNamespace(steps=steps)))


def test_hand_made_runs():
    prog = _program([("a", "conv", "va"), ("b", "mul", "vb"), ("c", "exp", "vc"), ("d", "add", "vd")])
    fp32 = {
        "va": np.array([1.0, 2.0]),
        "vb": np.array([1.0, 1e-6]),
        "vc": np.array([70000.0]),
        "vd": np.array([4.0]),
    }
    fp16 = {
        "va": np.array([1.0, 2.0]),
        "vb": np.array([1.0, 0.0]),
        "vc": np.array([np.inf]),
        "vd": np.array([4.2]),
    }
    d = find_divergence(prog, [fp32], [fp16], tolerance=1e-2)
    assert [o.op for o in d.ops] == ["a", "b", "c", "d"]
    assert d.ops[0].rel_error == 0.0
    assert d.ops[1].rel_error == pytest.approx(1e-6)
    assert d.ops[1].underflow == 1
    assert d.underflow_ops[0].op == "b"
    assert d.ops[2].overflow == 1 and d.ops[2].nonfinite == 1
    assert [o.op for o in d.overflow_ops] == ["c"]
    assert d.first_divergent is not None and d.first_divergent.op == "c"
    assert d.ops[3].rel_error == pytest.approx(0.05)
    assert not d


class _Blowup(torch.nn.Module):
    def forward(self, x):
        y = torch.relu(x) + 1.0
        z = y * 300.0
        w = z * 300.0  # > 65504 for x >= ~0: overflows in fp16
        return w / 1e5


def test_real_model_overflow_attributed_to_producing_op():
    from devicefit import interp
    from tests.helpers import convert

    ml = convert(_Blowup(), torch.ones(1, 4), precision="fp16", target="iOS17")
    prog = interp.load(ml)
    feeds = {"x": np.ones((1, 4), dtype=np.float32)}
    r32 = prog.run(feeds, "fp32", intermediates=True)
    r16 = prog.run(feeds, "fp16", intermediates=True)
    d = find_divergence(prog, [r32], [r16])
    assert d.overflow_ops, "expected the second multiply to overflow fp16"
    first = d.overflow_ops[0]
    assert first.op_type == "mul"
    # the first mul (600) is fine; the overflowing op is a later one
    muls = [o for o in d.ops if o.op_type == "mul"]
    assert muls[0].overflow == 0 and first is not muls[0]
    assert d.first_divergent is not None and d.first_divergent.index <= first.index
    # the division after it only propagates the inf: it is not blamed
    assert len(d.overflow_ops) == 1
    later = [o for o in d.ops if o.index > first.index]
    assert later and all(o.propagated and o.nonfinite for o in later)


class _GuardedBlowup(torch.nn.Module):
    """``torch.where`` keeps the other branch wherever the product overflows: the inf never reaches an output."""

    def forward(self, x):
        big = x * 1e5  # > 65504 for |x| > 0.66: inf in fp16
        return torch.where(x.abs() < 1e-3, big, x) * 2.0


def test_overflow_discarded_by_a_select_is_not_a_finding():
    from devicefit import interp
    from tests.helpers import convert

    ml = convert(_GuardedBlowup(), torch.ones(1, 4), precision="fp16", target="iOS17")
    prog = interp.load(ml)
    feeds = {"x": np.array([[1.0, -2.0, 0.5, 3.0]], dtype=np.float32)}
    d = find_divergence(
        prog, [prog.run(feeds, "fp32", intermediates=True)], [prog.run(feeds, "fp16", intermediates=True)]
    )
    assert any(o.nonfinite for o in d.ops)  # the overflow happens (at the product's cast to fp16)...
    assert d.overflow_ops == []  # ...and the select drops it: no overflow to report


def test_overflow_a_select_passes_on_is_a_finding():
    prog = _program([("a", "mul", "va"), ("b", "select", "vb"), ("c", "mul", "vc")])
    steps = prog.plan.block.steps
    steps[1].reads, steps[2].reads = (lambda: ["va"]), (lambda: ["vb"])
    prog.plan.block.outputs = ["vc"]
    fp32 = {"va": np.array([7e4, 1.0]), "vb": np.array([7e4, 1.0]), "vc": np.array([1.0, 1.0])}
    fp16 = {"va": np.array([np.inf, 1.0]), "vb": np.array([np.inf, 1.0]), "vc": np.array([np.inf, 1.0])}
    # the select passes the inf on to the output: the overflow is a finding
    assert [o.op for o in find_divergence(prog, [fp32], [fp16]).overflow_ops] == ["a", "b"]
    fp32["vb"] = fp16["vb"] = np.array([5.0, 1.0])  # the select keeps the other, finite branch in both runs
    fp16["vc"] = np.array([1.0, 1.0])
    assert find_divergence(prog, [fp32], [fp16]).overflow_ops == []


def test_untrained_uniform_outputs():
    rng = np.random.default_rng(0)
    uniform = rng.normal(0, 0.01, (16, 10))
    r = looks_untrained({"logits": uniform})
    assert r.looks_untrained and r.mean_entropy is not None and r.mean_entropy > 0.99
    confident = np.eye(10)[rng.integers(0, 10, 16)] * 12 + rng.normal(0, 1, (16, 10))
    r2 = looks_untrained({"logits": confident})
    assert not r2.looks_untrained and r2.mean_entropy is not None and r2.mean_entropy < 0.2


def test_untrained_constant_entropy_and_probabilities():
    probs = np.tile([0.7, 0.1, 0.1, 0.1], (8, 1))  # every sample the same distribution
    assert looks_untrained({"p": probs}).looks_untrained
    assert looks_untrained({"shape": np.ones((4, 1))}).output is None  # nothing to examine


def test_untrained_check_skips_integer_outputs():
    rng = np.random.default_rng(0)
    trained_like = rng.standard_normal((8, 10)) * 10  # confident, varied rows
    result = looks_untrained({"indices": rng.integers(0, 5, (8, 5)), "logits": trained_like})
    assert result.output == "logits"
    assert not result.looks_untrained


def test_untrained_check_judges_only_class_scores_not_linear_features():
    from devicefit.compare.class_axis import ClassAxis

    # a trained embedding model: a Linear projection to 64 small features, softmax of which is near-uniform
    feats = np.random.default_rng(0).normal(scale=0.1, size=(8, 64))
    linear = {"output": ClassAxis(1, "linear head (op_3)")}
    assert not looks_untrained({"output": feats}, linear).looks_untrained
    assert not looks_untrained(
        {"output": feats}, {"output": ClassAxis(1, "conv head (op_3)")}
    ).looks_untrained
    # the same numbers are judged when something says they are class scores
    assert looks_untrained({"logits": feats}, {"logits": ClassAxis(1, "linear head (op_3)")}).looks_untrained
    assert looks_untrained({"output": feats}, {"output": ClassAxis(1, "softmax (op_4)")}).looks_untrained
    assert looks_untrained({"output": feats}, linear, labelled="output").looks_untrained
    assert looks_untrained({"output": feats}, linear, user={"output": 1}).looks_untrained
