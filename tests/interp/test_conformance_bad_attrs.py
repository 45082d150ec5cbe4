"""Hand-edited (mutated) programs with impossible conv / pool attributes: a one-line devicefit error at load,
never a torch error from inside a kernel."""

from __future__ import annotations

import numpy as np
import pytest

from devicefit import interp
from devicefit.errors import InputError, ModelLoadError
from tests.interp import milprog

X = np.zeros((1, 3, 8, 8), np.float32)


def _conv(mb, x):
    w = np.ones((2, 3, 3, 3), np.float32)
    return mb.conv(
        x=x, weight=w, strides=[1, 1], dilations=[1, 1], pad_type="custom", pad=[1, 1, 1, 1], name="c"
    )


def _conv_transpose(mb, x):
    w = np.ones((3, 2, 3, 3), np.float32)
    return mb.conv_transpose(
        x=x, weight=w, strides=[1, 1], dilations=[1, 1], pad_type="custom", pad=[1, 1, 1, 1], name="c"
    )


def _max_pool(mb, x):
    return mb.max_pool(
        x=x, kernel_sizes=[2, 2], strides=[1, 1], pad_type="custom", pad=[0, 0, 0, 0], name="c"
    )


def _avg_pool(mb, x):
    return mb.avg_pool(
        x=x, kernel_sizes=[2, 2], strides=[1, 1], pad_type="custom", pad=[0, 0, 0, 0], name="c"
    )


BUILDERS = {"conv": _conv, "conv_transpose": _conv_transpose, "max_pool": _max_pool, "avg_pool": _avg_pool}
CASES = [
    (op, attr, value)
    for op in BUILDERS
    for attr in (["strides", "pad", "dilations"] if "conv" in op else ["strides", "pad", "kernel_sizes"])
    for value in ([-1] if attr == "pad" else [-1, 0])
]


@pytest.mark.parametrize("op,attr,value", CASES)
def test_impossible_attribute_is_a_one_line_devicefit_error(op, attr, value):
    from coremltools.converters.mil import Builder as mb

    def prog(x):
        return BUILDERS[op](mb, x)

    mlmodel = milprog.convert(prog, {"x": X})
    mutated = milprog.with_const(mlmodel, f"c_{attr}_0", [value] * (4 if attr == "pad" else 2))
    with pytest.raises((ModelLoadError, InputError)) as e:
        interp.load(mutated).run({"x": X})
    assert "\n" not in str(e.value)
