"""Generated validation samples stay within what the model accepts (check's data when --data is not given)."""

from __future__ import annotations

import numpy as np

from devicefit.sources.data import generate
from devicefit.sources.spec import InputSpec


def _specs() -> list[InputSpec]:
    return [
        InputSpec("input_ids", (1, 16), "int32"),
        InputSpec("attention_mask", (1, 16), "int32"),
        InputSpec("pixel_values", (1, 3, 4, 4), "float32"),
    ]


def test_integer_inputs_follow_the_examples_range():
    like = {
        "input_ids": np.array([[5, 90, 127, 3] * 4], np.int64),
        "attention_mask": np.array([[1] * 12 + [0] * 4], np.int64),
    }
    data = generate(_specs(), 32, seed=0, like=like)
    ids = np.stack([f["input_ids"] for f in data.feeds])
    mask = np.stack([f["attention_mask"] for f in data.feeds])
    assert set(np.unique(mask)) == {0, 1}  # a mask stays a mask (OPT summed 0..7 masks past its positions)
    assert ids.min() >= 3 and ids.max() <= 127 and ids.max() > 7  # the example's ids, not [0, 8)
    assert data.feeds[0]["pixel_values"].dtype == np.float32


def test_without_examples_integers_stay_small_and_seeded():
    a = generate(_specs(), 4, seed=1)
    b = generate(_specs(), 4, seed=1)
    ids = np.stack([f["input_ids"] for f in a.feeds])
    assert ids.min() >= 0 and ids.max() <= 7
    np.testing.assert_array_equal(ids, np.stack([f["input_ids"] for f in b.feeds]))


def test_random_example_inputs_are_bounded(monkeypatch):
    """A description declaring 1x3x16384x16384 must not allocate 3 GiB before anything checked it."""
    import pytest

    from devicefit.errors import InputError
    from devicefit.sources.spec import random_inputs

    with pytest.raises(InputError, match=r"'image'.*DEVICEFIT_MAX_INPUT_BYTES"):
        random_inputs([InputSpec("image", (1, 3, 16384, 16384), "float32")])
    monkeypatch.setenv("DEVICEFIT_MAX_INPUT_BYTES", str(64))
    with pytest.raises(InputError):
        random_inputs([InputSpec("x", (1, 32), "float32")])
    assert random_inputs([InputSpec("x", (1, 16), "float32")])["x"].shape == (1, 16)
