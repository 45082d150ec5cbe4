"""The new translations' MIL (scatter / scatter_nd with add, strided slices of a -inf padded input, gather_nd,
integer floor_div and mod, range_1d...) runs the same through the compiled path as through the interpreter loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.convert.elementwise_helpers import Fn
from tests.convert.helpers import source_of

WEIGHT = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))

CASES = {
    "erfinv_asinh": (lambda y: torch.erfinv(y) + torch.asinh(y * 50), (torch.linspace(-0.99, 0.99, 33),)),
    "bucketize_isin": (
        lambda v: (
            torch.bucketize(v, torch.tensor([-1.0, 0.0, 1.5]), right=True)
            + torch.isin(v, torch.tensor([0.0]))
        ),
        (torch.tensor([[-2.0, 0.0, 1.5, 3.0]]),),
    ),
    "embedding_bag_max": (
        lambda i, o: F.embedding_bag(i, WEIGHT, o, mode="max"),
        (torch.tensor([1, 2, 4, 5, 4, 3]), torch.tensor([0, 2, 2])),
    ),
    "index_add_diag_embed": (
        lambda x: torch.diag_embed(torch.zeros(4, 3).index_add(0, torch.tensor([1, 1, 3]), x), 1),
        (torch.randn(3, 3, generator=torch.Generator().manual_seed(1)),),
    ),
    "dilated_max_pool": (
        lambda x: F.max_pool2d(x, 3, stride=2, padding=1, dilation=2, ceil_mode=True),
        (torch.randn(1, 2, 9, 8, generator=torch.Generator().manual_seed(2)),),
    ),
    "integer_division": (
        lambda a: torch.div(a, -3, rounding_mode="trunc") + a // 4,
        (torch.tensor([[-9, -7, -1, 0, 5, 8]], dtype=torch.int32),),
    ),
}


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_compiled_equals_interpreter(case, precision):
    from devicefit import interp
    from devicefit.convert import ConvertOptions, convert
    from devicefit.interp.compiled import compile_program

    fn, inputs = CASES[case]
    source = source_of(Fn(fn).eval(), inputs)
    result = convert(source, ConvertOptions(precision=precision, frontend="torchscript"))
    prog = interp.load(result.mlmodel)
    feeds = source.coreml_feeds(source.example_inputs)
    reference = prog.run(feeds, precision=precision)
    compiled = compile_program(prog, precision, exact=True)
    assert not compiled.fallbacks, [f.describe() for f in compiled.fallbacks]
    got = compiled.run(feeds)
    for name, ref in reference.items():
        assert got[name].dtype == ref.dtype and got[name].shape == ref.shape, name
        assert np.array_equal(got[name], ref, equal_nan=ref.dtype.kind == "f"), name
