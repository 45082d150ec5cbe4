"""The per-layer sensitivity runs on a subset of the calibration samples; the search judges on all of them.

Sensitivity evaluates every weight at every ladder step: on a DistilBERT package it was 182 s of a 244 s search at
18 calibration samples (~25 min at the default 150). It only orders the weights, so it runs on the first
``sensitivity_samples`` calibration samples; every candidate of the search is measured on all of them.
"""

from __future__ import annotations

import numpy as np
import pytest

from devicefit import compress, demo
from devicefit.compress.evaluate import Evaluator
from devicefit.compress.holdout import split_samples
from devicefit.errors import InputError
from tests.compress.test_search import demo_fp32


@pytest.fixture(scope="module")
def searched():
    data = demo.held_out(80)
    options = compress.SearchOptions("cosine>=0.99", min_elements=64, sensitivity_samples=8)
    return data, compress.search(demo_fp32(), data.feeds, options, labels=data.labels)


def test_sensitivity_on_the_first_samples_the_search_on_all(searched):
    data, result = searched
    cal, _ = split_samples(len(data.feeds), 0.25, 0)
    assert result.calibration_samples == len(cal) == 60
    assert result.sensitivity.samples == 8 and result.to_dict()["sensitivity"]["samples"] == 8
    assert result.generalizes  # the chosen plan is still judged on every calibration and held-out sample


def test_a_layers_sensitivity_is_its_metric_on_those_samples(searched, monkeypatch):
    data, result = searched
    # re-evaluate one weight alone on the first 8 and on all calibration samples: the table holds the former
    seen: list[int] = []
    original = Evaluator.evaluate

    def spy(self, assignment, samples=None):  # type: ignore[no-untyped-def]
        seen.append(len(self.spec.feeds) if samples is None else samples)
        return original(self, assignment, samples)

    monkeypatch.setattr(Evaluator, "evaluate", spy)
    again = compress.search(
        demo_fp32(),
        data.feeds,
        compress.SearchOptions("cosine>=0.99", min_elements=64, sensitivity_samples=8),
        labels=data.labels,
    )
    # base on all, base on the subset, then every (weight, step) on the subset, then candidates on all
    steps = (len(result.sensitivity.choices) - 1) * len(result.sensitivity.layers)
    assert seen[:2] == [60, 8] and seen[2 : 2 + steps] == [8] * steps and set(seen[2 + steps :]) == {60}
    # same inputs, same seed: the same plan and the same sensitivities
    assert again.chosen.assignment == result.chosen.assignment
    for a, b in zip(again.sensitivity.layers, result.sensitivity.layers):
        assert a.noise == b.noise


def test_all_samples_when_asked_or_when_there_are_fewer():
    data = demo.held_out(20)
    result = compress.search(
        demo_fp32(),
        data.feeds,
        compress.SearchOptions("cosine>=0.99", min_elements=64, sensitivity_samples=None),
        labels=data.labels,
    )
    assert result.sensitivity.samples is None
    fewer = compress.search(
        demo_fp32(), data.feeds, compress.SearchOptions("cosine>=0.99", min_elements=64), labels=data.labels
    )
    assert fewer.sensitivity.samples is None  # 15 calibration samples < 32: all of them
    assert np.isfinite(fewer.sensitivity.base_metric)
    with pytest.raises(InputError, match="sensitivity_samples"):
        compress.SearchOptions("cosine>=0.99", sensitivity_samples=0).validate()
