"""A float -> int -> bool cast chain keeps PyTorch's truncation.

coremltools 9.0's ``cast_optimization`` pass fused ``cast(fp32 -> int32) -> cast(int32 -> bool)`` into one
``cast(fp32 -> bool)``: its range / resolution rule treats bool as the range [0, 1] at resolution 1, which the
int32 step does not narrow, but a cast to bool tests for non-zero, so ``x.int().bool()`` of 0.5 became True
(PyTorch: ``int(0.5) = 0`` -> False). Found by the differential fuzzer (tests/interp/difffuzz.py, seed 3085:
``logical_not(x.long())``). devicefit keeps such pairs unfused while it converts.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.convert.elementwise_helpers import assert_same_integers, run_fn

X = torch.tensor([[0.5, -0.7, 1.5, 0.0, -2.25, 0.999, 3.0, -1.0]])

CASES = {
    "int_bool_float": lambda t: t.int().bool().float(),
    "logical_not_long": lambda t: torch.logical_not(t.long()).int(),
    "where_long_bool": lambda t: torch.where(t.long().bool(), t, -t),
}


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_float_to_int_to_bool_truncates(case, frontend, precision):
    got, expected, _ = run_fn(CASES[case], (X,), frontend, precision)
    if expected[0].dtype.kind in "iub":
        assert_same_integers(got[0], expected[0])
    else:
        np.testing.assert_array_equal(got[0], expected[0].astype(got[0].dtype))


def test_other_cast_chains_are_still_fused():
    """fp32 -> fp16 -> fp32 style chains, which do not truncate, still go through coremltools' fusion."""
    from devicefit.convert import ConvertOptions, convert
    from tests.convert.elementwise_helpers import Fn
    from tests.convert.helpers import source_of

    source = source_of(Fn(lambda t: t.int().long().float() * 2.0), (X,))
    program = convert(source, ConvertOptions(precision="fp32", frontend="torchscript")).mlmodel._mil_program
    casts = [op for op in program.functions["main"].operations if op.op_type == "cast"]
    assert len(casts) == 2  # int32 -> int32 (long) cancelled: fp32 -> int32 -> fp32
