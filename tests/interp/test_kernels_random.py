"""Random ops (interp/ops/random.py): the distribution checked statistically, seeds honoured.

The bounds are ~5 standard errors wide and every seed is fixed, so each test is deterministic and a wrong
distribution (shifted mean, wrong scale, closed interval, logits read as probabilities) fails it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.interp import milprog

N = 20_000  # samples per distribution check
SHAPE = np.array([100, 200], np.int32)


def ks_statistic(samples: np.ndarray, cdf) -> float:
    """Kolmogorov-Smirnov distance between the samples' empirical CDF and ``cdf``."""
    x = np.sort(samples.astype(np.float64).ravel())
    n = len(x)
    f = cdf(x)
    return float(max((np.arange(1, n + 1) / n - f).max(), (f - np.arange(n) / n).max()))


KS_BOUND = 1.95 / math.sqrt(N)  # the 0.1% critical value of the KS distance


def normal_cdf(mean: float, std: float):
    erf = np.vectorize(math.erf)
    return lambda x: 0.5 * (1 + erf((x - mean) / (std * math.sqrt(2))))


def _normal(s):
    from coremltools.converters.mil import Builder as mb

    return mb.random_normal(shape=s, mean=1.5, stddev=2.0, seed=7)


def test_random_normal_distribution_and_runtime_shape():
    out = milprog.run(_normal, {"s": SHAPE}, op="random_normal")  # the shape is a run-time input
    assert out.shape == (100, 200) and out.dtype == np.float32
    assert abs(out.mean() - 1.5) < 5 * 2.0 / math.sqrt(N)
    assert abs(out.var() / 4.0 - 1) < 5 * math.sqrt(2 / N)
    assert ks_statistic(out, normal_cdf(1.5, 2.0)) < KS_BOUND


def _uniform(s):
    from coremltools.converters.mil import Builder as mb

    return mb.random_uniform(shape=s, low=-3.0, high=5.0, seed=11)


def test_random_uniform_half_open_interval():
    out = milprog.run(_uniform, {"s": SHAPE}, op="random_uniform")
    assert out.min() >= -3.0 and out.max() < 5.0
    assert ks_statistic(out, lambda x: (x + 3.0) / 8.0) < KS_BOUND


def _bernoulli(s):
    from coremltools.converters.mil import Builder as mb

    return mb.random_bernoulli(shape=s, prob=0.3, seed=5)


def test_random_bernoulli_probability():
    out = milprog.run(_bernoulli, {"s": SHAPE}, op="random_bernoulli")
    assert set(np.unique(out).tolist()) == {0.0, 1.0}
    assert abs(out.mean() - 0.3) < 5 * math.sqrt(0.3 * 0.7 / N)


LOGITS = np.log(np.array([[0.1, 0.2, 0.7, 0.0001], [0.25, 0.25, 0.25, 0.25]], np.float32))


@pytest.mark.parametrize("mode", ["logits", "probs"])
def test_random_categorical_frequencies(mode):
    from coremltools.converters.mil import Builder as mb

    def prog(x):
        return mb.random_categorical(x=x, mode=mode, size=5000, seed=3)

    # in "probs" mode the same distribution is given as probabilities (rows need not sum to 1)
    feed = LOGITS if mode == "logits" else np.exp(LOGITS) * 3
    out = milprog.run(prog, {"x": feed}, op="random_categorical")
    assert out.shape == (2, 5000) and out.dtype == np.float32
    expected = np.exp(LOGITS) / np.exp(LOGITS).sum(-1, keepdims=True)
    for row, p in zip(out, expected):
        freq = np.bincount(row.astype(int), minlength=4) / len(row)
        assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / len(row)) + 1e-3), (freq, p)


def _two_normals(s):
    from coremltools.converters.mil import Builder as mb

    seeded = mb.random_normal(shape=s, seed=42, name="seeded")
    other_seed = mb.random_normal(shape=s, seed=43, name="other_seed")
    unseeded = mb.random_normal(shape=s, name="unseeded")
    return seeded, other_seed, unseeded


def test_seed_makes_invocations_reproducible_and_no_seed_does_not():
    prog = milprog.build(_two_normals, {"s": np.array([64], np.int32)})
    first = prog.run({"s": np.array([64], np.int32)})
    second = prog.run({"s": np.array([64], np.int32)})
    np.testing.assert_array_equal(first["seeded"], second["seeded"])
    assert not np.array_equal(first["seeded"], first["other_seed"])
    assert not np.array_equal(first["unseeded"], second["unseeded"])
