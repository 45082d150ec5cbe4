"""Compression that generalises (issue 13): the search sees only calibration samples, the plan holds on
held-out samples, and the same inputs + seed give the same plan."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from devicefit import compress
from devicefit.compress.budget import margin, per_sample
from devicefit.compress.holdout import pick_labels, split_samples
from tests import zoo
from tests.helpers import convert


def test_split_is_seeded_disjoint_and_keeps_one_of_each():
    cal, held = split_samples(20, 0.25, seed=3)
    assert len(held) == 5 and sorted(cal + held) == list(range(20))
    assert (cal, held) == split_samples(20, 0.25, seed=3)
    assert held != split_samples(20, 0.25, seed=4)[1]
    assert split_samples(2, 0.01, 0)[1] and split_samples(2, 0.99, 0)[0]  # one each
    assert split_samples(5, 0.0, 0) == ([0, 1, 2, 3, 4], [])
    labels = np.arange(8).reshape(4, 2).reshape(-1)  # 2 label rows per sample
    assert pick_labels(labels, 4, [1, 3]).tolist() == [2, 3, 6, 7]


def test_margin_is_the_standard_error_of_the_per_sample_metric():
    rng = np.random.default_rng(0)
    ref = {"y": rng.standard_normal((50, 10))}
    noisy = {"y": ref["y"] + rng.standard_normal((50, 10)) * 0.3}
    values = per_sample("cosine", noisy, ref, None, "y")
    assert values.shape == (50,) and (values < 1).all()
    assert margin(values) == pytest.approx(2 * values.std(ddof=1) / np.sqrt(50))
    same = per_sample("cosine", ref, ref, None, "y")
    assert margin(same) == pytest.approx(0.0, abs=1e-12)
    # accuracy: paired with the reference, so identical predictions have no margin at all
    labels = rng.integers(0, 10, 50)
    assert margin(per_sample("accuracy", ref, ref, labels, "y")) == 0.0


def zoo_model(name: str):
    entry = zoo.BY_NAME[name]
    module, inputs = zoo.build(entry)
    ml = convert(module, *inputs, precision="fp32", target="iOS18")
    rng = np.random.default_rng(7)
    name = interp_input_name(ml)
    feeds = [{name: rng.standard_normal(tuple(inputs[0].shape)).astype(np.float32)} for _ in range(24)]
    return ml, feeds


def interp_input_name(ml) -> str:
    from devicefit import interp

    return interp.load(ml).inputs[0].name


@pytest.mark.slow
@pytest.mark.parametrize(("model", "mode"), [("mobilenet_v2", "vmap"), ("vit", "vmap")])
def test_zoo_model_meets_budget_on_held_out_samples_twice_with_the_same_plan(model, mode):
    ml, feeds = zoo_model(model)
    options = compress.SearchOptions("cosine>=0.999", bits=(4, 8), min_elements=256, holdout=0.25, seed=1)
    first = compress.search(ml, feeds, options)
    second = compress.search(ml, feeds, options)
    for result in (first, second):
        assert result.met and result.heldout_met, (result.chosen.metric, result.heldout_metric)
        assert (result.calibration_samples, result.heldout_samples) == (18, 6)
        assert result.chosen.bytes < result.base_bytes
        assert {"reference", "batching probe", "sensitivity", "search", "build", "held-out"} <= set(
            result.timings
        )
        assert result.batching.mode == mode and result.batching.chunk == 18, result.batching.reason
    assert first.chosen.assignment == second.chosen.assignment
    assert first.heldout_metric == second.heldout_metric
    # one interpreter run per sample: the same plan, metrics equal to about one fp16 rounding step
    serial = compress.search(ml, feeds, dataclasses.replace(options, batch=False))
    assert serial.batching.mode == "per-sample" and "batching probe" not in serial.timings
    assert serial.chosen.assignment == first.chosen.assignment
    assert serial.chosen.metric == pytest.approx(first.chosen.metric, abs=1e-5)
    assert serial.heldout_metric == pytest.approx(first.heldout_metric, abs=1e-5)


def test_every_candidate_evaluation_is_timed_under_sensitivity_or_search(monkeypatch):
    import torch

    from devicefit import demo
    from devicefit.compress import evaluate

    stage = {"now": ""}
    seen: list[str] = []
    original = evaluate.Evaluator.evaluate

    def spy(self, assignment, samples=None):
        seen.append(stage["now"])
        return original(self, assignment, samples)

    monkeypatch.setattr(evaluate.Evaluator, "evaluate", spy)
    ml = convert(demo.load_module(), torch.zeros(1, 1, 8, 8), target="iOS18", input_names=["image"])
    data = demo.held_out(16)
    result = compress.search(
        ml,
        data.feeds,
        compress.SearchOptions("cosine>=0.99", bits=(4, 8), min_elements=64),
        progress=lambda name, done, total: stage.update(now=name),
    )
    # the timer charges work to the stage announced last: evaluations must not land in "compress"
    assert seen and set(seen) <= {"sensitivity", "search"}, sorted(set(seen))
    assert {"compress", "sensitivity", "search"} <= set(result.timings)
