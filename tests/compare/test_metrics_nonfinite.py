"""Metrics on outputs that overflowed (inf) in fp16: a failing value, no numpy warning on the user's terminal.

Found by the outside sweep (a VAE's exp(logvar) head overflowing in fp16): ``RuntimeWarning: invalid value
encountered in scalar divide`` from the cosine printed under check's verdict, which said "snr_db NaN"."""

from __future__ import annotations

import math
import warnings

import numpy as np

from devicefit.compare.metrics import cosine_similarity
from devicefit.compare.validate import describe_metric


def test_cosine_of_an_overflowed_candidate_fails_quietly():
    ref = np.array([1.0, 2.0, 3.0], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning fails the test
        result = cosine_similarity(ref, np.array([1.0, np.inf, 3.0], np.float32), 0.999)
        both = cosine_similarity(np.array([np.inf, 1.0]), np.array([np.inf, 1.0]), 0.999)
    assert math.isnan(result.value) and not result.passed
    assert math.isnan(both.value) and not both.passed


def test_a_nan_metric_is_described_in_words_not_by_its_key():
    assert describe_metric("snr_db", math.nan) == "SNR NaN dB"
    assert describe_metric("cosine_similarity", math.nan) == "cosine NaN"
    assert describe_metric("max_rel_error", math.nan) == "max relative error NaN"
