"""A request that is not a dict names the model's own inputs in its one-line error (it said "pass {'x': array}"
whatever the model's inputs were called)."""

from __future__ import annotations

import numpy as np
import pytest

from devicefit.engines.base import InputSpec, validate_feeds
from devicefit.errors import InputError


def test_a_bare_array_gets_the_model_input_names_in_the_hint():
    specs = [InputSpec("pixel_values", "float", (1, 3, 8, 8)), InputSpec("mask", "float", (1, 8))]
    with pytest.raises(InputError) as err:
        validate_feeds(specs, np.zeros((1, 3, 8, 8), np.float32))
    message = str(err.value)
    assert "ndarray" in message and "\n" not in message
    assert "{'pixel_values': array, 'mask': array}" in message
    assert "'x'" not in message
