"""Per-output comparison and task accuracy."""

from __future__ import annotations

import numpy as np

from devicefit.compare.validate import compare, match_outputs, stack_samples


def test_compare_per_output_and_accuracy():
    ref = {"logits": np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 2.0]])}
    cand = {"out": ref["logits"] + np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.5], [0.0, 0.0, 0.0]])}
    labels = np.array([0, 1, 2])
    c = compare("fp16", ref, cand, "pytorch", labels)
    assert [o.output for o in c.outputs] == ["out"]
    m = c.outputs[0].metrics
    assert m["max_abs_error"].value == 1.5
    assert m["top1_agreement"].value == 2 / 3
    assert "top5_agreement" not in m  # 3 classes
    assert c.reference_accuracy == 1.0
    assert c.accuracy is not None and c.accuracy.value == 2 / 3
    assert not c.passed
    assert c.worst("top1_agreement") == 2 / 3


def test_identical_outputs_pass():
    a = np.linspace(-1, 1, 40).reshape(4, 10)
    c = compare("fp32", {"y": a}, {"y": a.copy()}, "pytorch")
    assert c.passed and c.accuracy is None


def test_stack_and_match():
    s = stack_samples([{"y": np.ones((1, 3))}, {"y": np.zeros((1, 3))}], ["y"])
    assert s["y"].shape == (2, 3)
    assert match_outputs(["a", "b"], ["b", "a"]) == [("a", "a"), ("b", "b")]
    assert match_outputs(["logits"], ["var_43"]) == [("logits", "var_43")]


def test_worst_is_nan_whatever_the_output_order():
    import math

    from devicefit.compare.metrics import MetricResult
    from devicefit.compare.validate import Comparison, OutputComparison

    good = OutputComparison("a", {"snr_db": MetricResult("snr_db", 60.0, 30.0, higher_is_better=True)})
    bad = OutputComparison("b", {"snr_db": MetricResult("snr_db", math.nan, 30.0, higher_is_better=True)})
    for order in ([good, bad], [bad, good]):
        assert math.isnan(Comparison("fp16", "pytorch", order).worst("snr_db"))
