"""Budget strings: relative accuracy budgets carry %, absolute ones stay plain, bounds compare with slack."""

from __future__ import annotations

import numpy as np
import pytest

from devicefit.compress.budget import measure, parse_budget
from devicefit.compress.evaluate import Measure
from devicefit.compress.search import _candidate
from devicefit.errors import InputError


@pytest.mark.parametrize(
    "text, metric, value, relative",
    [
        ("accuracy>=-0.5%", "accuracy", -0.005, True),
        ("accuracy>=-1%", "accuracy", -0.01, True),
        ("accuracy>=0.95", "accuracy", 0.95, False),
        ("accuracy>=97%", "accuracy", 0.97, False),
        ("cosine>=0.999", "cosine", 0.999, False),
        ("psnr>=40", "psnr", 40.0, False),
    ],
)
def test_budgets_parse(text, metric, value, relative):
    budget = parse_budget(text)
    assert (budget.metric, budget.relative) == (metric, relative)
    assert budget.value == pytest.approx(value)


@pytest.mark.parametrize(
    "text, message",
    [
        # Signed without %: -0.5 used to read as a 50-point drop, -1 as "any accuracy at all".
        ("accuracy>=-0.5", r"needs a %: write accuracy>=-0.5% for a drop of 0.5 percentage points"),
        ("accuracy>=-1", r"needs a %: write accuracy>=-1%"),
        # Unsigned small percentage: almost surely a drop missing its minus sign.
        ("accuracy>=0.5%", r"for a drop from the original model write accuracy>=-0.5%"),
        ("accuracy>=-150%", "out of range"),
    ],
)
def test_ambiguous_accuracy_budgets_rejected(text, message):
    with pytest.raises(InputError, match=message) as info:
        parse_budget(text)
    assert "\n" not in str(info.value)


def test_candidate_exactly_at_the_bound_passes():
    # 152/300 - 1% and 149/300 differ by one rounding step; the candidate meets the budget exactly.
    labels = np.zeros(300, dtype=np.int64)
    scores = np.zeros((300, 2), dtype=np.float32)
    scores[:, 1] = 1.0  # wrong by default
    baseline_scores, candidate_scores = scores.copy(), scores.copy()
    baseline_scores[:152] = [1.0, 0.0]
    candidate_scores[:149] = [1.0, 0.0]
    baseline = measure("accuracy", {"y": baseline_scores}, {}, labels, "y")
    candidate = measure("accuracy", {"y": candidate_scores}, {}, labels, "y")
    threshold = parse_budget("accuracy>=-1%").threshold(baseline)
    assert candidate < threshold  # the float rounding the slack exists for
    assert _candidate({}, 1, Measure(candidate, 0.0), threshold).passed
    assert not _candidate({}, 1, Measure(148 / 300, 0.0), threshold).passed


def test_safety_margin_decides_a_candidate_the_bare_metric_would_pass():
    # cosine 0.9992 against a 0.999 bound: passes bare, fails when the calibration set's 2 standard errors
    # (0.0005) say a fresh set may land below the bound
    assert _candidate({}, 1, Measure(0.9992, 0.0, margin=0.0001), 0.999).passed
    risky = _candidate({}, 1, Measure(0.9992, 0.0, margin=0.0005), 0.999)
    assert not risky.passed and risky.to_dict()["margin"] == 0.0005
