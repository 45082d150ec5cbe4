"""fp16 emulation rounds large kernel outputs in place (issue 12: `check`'s peak memory on large activations).

The in-place path must give the values of :func:`round_fp16` bit for bit and must never modify anything a
kernel was given (inputs, constants, states): an output that aliases one is rounded into a new tensor.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devicefit.interp import dtypes
from tests.interp.milprog import build

N = dtypes.IN_PLACE_MIN_ELEMENTS  # large enough to take the in-place path


def _awkward(n: int) -> torch.Tensor:
    """Values that exercise fp16 rounding: overflow, subnormals, ties, NaN, inf, signed zero."""
    g = torch.Generator().manual_seed(0)
    t = torch.randn(n, generator=g) * torch.logspace(-9, 6, n)
    t[:6] = torch.tensor([65520.0, -70000.0, 1e-8, float("nan"), float("inf"), -0.0])
    t[6] = 1.0 + 2.0**-11  # a tie: rounds to even
    return t


def test_in_place_rounding_equals_the_reference_bit_for_bit():
    t = _awkward(N + 12345)
    expected = dtypes.round_fp16(t.clone())
    out = dtypes.round_fp16_output(t, [])
    assert out is t  # rounded in place: no second float32 tensor
    assert torch.equal(out.view(torch.int32), expected.view(torch.int32))


@pytest.mark.parametrize(
    "make_output",
    [
        lambda x: x,  # an identity kernel
        lambda x: x.reshape(-1),  # a view
        lambda x: x.view(torch.float32)[: N // 2],  # a slice of the input's storage
    ],
    ids=["identity", "reshape-view", "slice"],
)
def test_an_output_that_aliases_an_input_is_never_rounded_in_place(make_output):
    x = _awkward(N + 7)
    before = x.clone()
    out = make_output(x)
    rounded = dtypes.round_fp16_output(out, [x])
    assert torch.equal(x.view(torch.int32), before.view(torch.int32))  # the input is untouched
    expected = dtypes.round_fp16(make_output(before))
    assert torch.equal(rounded.view(torch.int32), expected.view(torch.int32))


def test_an_output_aliasing_a_tensor_in_a_list_input_is_not_rounded_in_place():
    x = _awkward(N)
    before = x.clone()
    dtypes.round_fp16_output(x, [[torch.zeros(1), x]])
    assert torch.equal(x.view(torch.int32), before.view(torch.int32))


def _program(x):  # type: ignore[no-untyped-def]
    from coremltools.converters.mil import Builder as mb

    a = mb.mul(x=x, y=np.float32(3.0))  # a fresh output: rounded in place
    b = mb.reshape(x=a, shape=[-1])  # may alias a
    c = mb.identity(x=b)
    d = mb.add(x=c, y=np.float32(1e-3))
    return mb.reshape(x=d, shape=list(x.shape)), mb.identity(x=x)


@pytest.mark.parametrize("strict", [False, True], ids=["hot-path", "strict"])
def test_fp16_program_with_views_and_identities_matches_the_copying_path(monkeypatch, strict):
    feeds = {"x": _awkward(2 * N).numpy().reshape(2, N) * np.float32(1e-3)}
    prog = build(_program, feeds, target="iOS17", precision="fp16")
    kept = feeds["x"].copy()
    in_place = prog.run(dict(feeds), precision="fp16", strict=strict)
    again = prog.run(dict(feeds), precision="fp16", strict=strict)  # constants were not modified by run 1
    np.testing.assert_array_equal(feeds["x"], kept)  # the caller's array is never written
    monkeypatch.setattr(dtypes, "IN_PLACE_MIN_ELEMENTS", 1 << 62)  # everything takes the copying path
    copying = prog.run(dict(feeds), precision="fp16", strict=strict)
    assert in_place.keys() == copying.keys() == again.keys()
    for name in in_place:
        np.testing.assert_array_equal(in_place[name], copying[name])
        np.testing.assert_array_equal(again[name], copying[name])
