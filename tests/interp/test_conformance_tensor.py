"""Tensor-building ops through MIL programs: shapes computed at run time, against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from tests.interp import milprog


# (ct.convert gives a symbolic-length input the range 1..2)
@pytest.mark.parametrize("shape", [[2, 3], [4], [5, 1]])
def test_fill_with_a_run_time_shape_of_unknown_rank(shape):
    """A shape input of symbolic length gives an output of unknown rank (a variadic dim in the proto)."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import get_new_symbol

    def prog(s):
        return mb.fill(shape=s, value=2.5)

    feed = {"s": np.int32(shape)}
    prog_ = milprog.build(prog, feed, shapes={"s": (get_new_symbol(),)})
    (out,) = prog_.run(feed, strict=True).values()
    np.testing.assert_array_equal(out, np.full(shape, 2.5, np.float32))
