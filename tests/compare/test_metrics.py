"""Every metric against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from devicefit.compare.metrics import METRICS, MetricResult, accuracy, topk_agreement


def test_table_names_every_metric():
    assert set(METRICS) == {
        "max_abs_error",
        "max_rel_error",
        "snr_db",
        "psnr_db",
        "cosine_similarity",
        "top1_agreement",
        "top5_agreement",
    }
    for name, fn in METRICS.items():
        assert fn(np.ones((2, 7)), np.ones((2, 7))).name == name


def test_max_abs_and_rel_error():
    ref, cand = np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.5, 2.0])
    assert METRICS["max_abs_error"](ref, cand).value == pytest.approx(1.0)
    assert METRICS["max_rel_error"](ref, cand).value == pytest.approx(1.0 / 3.0)
    assert METRICS["max_abs_error"](ref, cand, tol=0.5).passed is False
    assert bool(METRICS["max_rel_error"](ref, cand, tol=0.5)) is True


def test_snr_and_psnr():
    # signal 3²+4² = 25, noise 1² = 1 -> 10·log10(25)
    assert METRICS["snr_db"]([3.0, 4.0], [3.0, 5.0]).value == pytest.approx(10 * math.log10(25))
    # range 2, mse (0 + 1)/2 -> 20·log10(2 / sqrt(0.5))
    assert METRICS["psnr_db"]([0.0, 2.0], [0.0, 3.0]).value == pytest.approx(
        20 * math.log10(2 / math.sqrt(0.5))
    )
    assert METRICS["snr_db"]([1.0], [1.0]).value == math.inf
    assert METRICS["snr_db"]([1.0, 2.0], [1.0, 2.1], tol=30.0).passed is False  # 10·log10(5/0.01) = 27 dB


def test_cosine_similarity():
    assert METRICS["cosine_similarity"]([1.0, 0.0], [1.0, 1.0]).value == pytest.approx(1 / math.sqrt(2))
    assert METRICS["cosine_similarity"]([0.0, 0.0], [0.0, 0.0]).value == 1.0
    assert METRICS["cosine_similarity"]([1.0, 0.0], [0.0, 0.0]).value == 0.0


def test_nan_fails_every_verdict():
    ref, cand = np.array([1.0, 2.0]), np.array([1.0, np.nan])
    assert not METRICS["max_abs_error"](ref, cand, tol=10.0)
    assert not METRICS["snr_db"](ref, cand, tol=0.0)
    assert not METRICS["psnr_db"](ref, cand)  # no bound, still a failure


def test_top1_counts_near_ties_as_agreeing():
    ref = np.array([[1.0, 0.9995, 0.2]])
    cand = np.array([[0.99, 1.0, 0.2]])  # picks class 1, within 1e-3 of the reference's best
    assert METRICS["top1_agreement"](ref, cand).value == 1.0
    strict = topk_agreement(ref, cand, 1, tie_rtol=0.0, tie_atol=0.0, noise_z=0.0)
    assert strict.value == 0.0


def test_top1_disagreement_and_fraction():
    ref = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.5], [0.2, 0.1, 3.0], [5.0, 0.0, 1.0]])
    cand = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.5], [0.2, 0.1, 3.0], [5.0, 0.0, 1.0]])
    r = METRICS["top1_agreement"](ref, cand, tol=0.99)
    assert r.value == pytest.approx(0.75)
    assert r.details["disagreeing"] == 1
    assert not r


def test_top5_uses_set_and_ties():
    ref = np.array([[6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    same_set = np.array([[2.0, 3.0, 4.0, 5.0, 6.0, 0.0, 1.0]])  # same top-5 set, other order
    swapped = np.array([[6.0, 5.0, 4.0, 3.0, 0.0, 1.0, 2.0]])  # class 6 enters the top-5
    assert METRICS["top5_agreement"](ref, same_set).value == 1.0
    assert METRICS["top5_agreement"](ref, swapped).value == 0.0
    tied = np.array([[6.0, 5.0, 4.0, 3.0, 2.0, 1.999, 0.0]])  # class 5 ties class 4 within 1e-3·6
    assert METRICS["top5_agreement"](tied, np.array([[6.0, 5.0, 4.0, 3.0, 0.0, 2.0, 0.0]])).value == 1.0


def test_topk_not_applicable_with_few_classes():
    r = METRICS["top5_agreement"](np.ones((2, 3)), np.ones((2, 3)), tol=0.99)
    assert r.value is None and r.passed


def test_accuracy_and_floor():
    scores = np.array([[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.5, 0.2, 0.3]])
    r = accuracy([0, 1, 2], scores, tol=0.7)
    assert r.value == pytest.approx(2 / 3)
    assert not r
    with pytest.raises(ValueError):
        accuracy([0, 1], scores)


def test_metric_result_directions_and_json():
    assert MetricResult("x", 0.5, 0.4, higher_is_better=True)
    assert not MetricResult("x", 0.5, 0.4, higher_is_better=False)
    d = MetricResult("x", math.inf, 30.0).to_dict()
    assert d["value"] == 1e308 and d["passed"] is True
    assert MetricResult("x", math.nan, 1.0).to_dict()["value"] is None


@pytest.mark.parametrize("masked", [-np.inf, -1e4])
def test_topk_tie_window_ignores_masked_or_huge_negative_scores(masked):
    """A masked -inf (or one huge negative logit) must not widen the near-tie window to every class."""
    ref = np.array([[5.0, 1.0, 0.0, masked]])
    cand = np.array([[0.0, 1.0, 5.0, masked]])
    assert topk_agreement(ref, cand, 1).value == 0.0
    assert topk_agreement(ref, ref.copy(), 1).value == 1.0


def test_snr_and_psnr_survive_overflow():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's overflow in the squares is the point
        huge = METRICS["psnr_db"]([0.0, 1e200], [0.0, 1.1e200]).value
        snr = METRICS["snr_db"]([1.0, 2.0], [1.0, 1e300]).value
    assert huge == -math.inf and snr == -math.inf
    assert METRICS["snr_db"]([1e-300], [1e10]).value == -math.inf  # ratio underflows to 0
