"""What callers feed Program.run: integer range, byte order, torch dtypes numpy lacks, ragged and object
data (issue 11: "library calls with big-endian arrays, bfloat16 tensors or ragged lists raise non-devicefit
exceptions"; "int64/uint64 inputs are silently cut to int32"). Also rank-0 outputs (issue 10 item 6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devicefit import interp
from devicefit.errors import InputError
from tests.helpers import convert


class _Embed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.table = torch.nn.Embedding(10, 4)

    def forward(self, ids, x):
        return self.table(ids) * x


@pytest.fixture(scope="module")
def embed():
    torch.manual_seed(0)
    ids = torch.tensor([[1, 2, 3]], dtype=torch.int32)
    x = torch.randn(1, 3, 4)
    prog = interp.load(convert(_Embed().eval(), (ids, x), input_names=["ids", "x"]))
    assert prog.inputs[0].dtype == "int32"
    return prog, ids.numpy(), x.numpy()


def _out(result: dict) -> np.ndarray:
    (value,) = result.values()
    return value


def test_int64_feeds_that_fit_run_like_int32(embed):
    prog, ids, x = embed
    np.testing.assert_array_equal(
        _out(prog.run({"ids": ids.astype(np.int64), "x": x})), _out(prog.run({"ids": ids, "x": x}))
    )


@pytest.mark.parametrize("dtype, shift", [(np.int64, 2**32), (np.int64, -(2**40)), (np.uint64, 2**63)])
def test_integers_that_do_not_fit_int32_are_refused_not_wrapped(embed, dtype, shift):
    prog, ids, x = embed
    wrapped = (
        (ids.astype(np.int64) + shift) if dtype == np.int64 else ids.astype(np.uint64) + np.uint64(shift)
    )
    with pytest.raises(InputError, match=r"input 'ids' holds -?\d+, which does not fit the model's int32"):
        prog.run({"ids": wrapped.astype(dtype), "x": x})


def test_big_endian_arrays_are_converted(embed):
    prog, ids, x = embed
    expected = _out(prog.run({"ids": ids, "x": x}))
    got = _out(prog.run({"ids": ids.astype(">i4"), "x": x.astype(">f4")}))
    np.testing.assert_array_equal(got, expected)
    got = _out(prog.run({"ids": ids.astype(">i8"), "x": x.astype(">f8")}))
    np.testing.assert_array_equal(got, expected)


def test_reversed_views_are_read_in_their_logical_order(embed):
    """A view reversed along an axis of length 1 is C-contiguous to numpy but has a negative stride, which
    torch.from_numpy refuses (it raised a raw ValueError)."""
    prog, ids, x = embed
    expected = _out(prog.run({"ids": ids, "x": x}))
    got = _out(prog.run({"ids": ids[::-1], "x": x[::-1]}))  # axis 0 has length 1: same values
    np.testing.assert_array_equal(got, expected)
    flipped = x[:, ::-1]  # a real reversal: the interpreter must read the flipped values
    want = _out(prog.run({"ids": ids[:, ::-1].copy(), "x": flipped.copy()}))
    np.testing.assert_array_equal(_out(prog.run({"ids": ids[:, ::-1], "x": flipped})), want)


def test_bfloat16_tensors_are_widened(embed):
    prog, ids, x = embed
    x_bf16 = torch.from_numpy(x).to(torch.bfloat16)
    got = _out(prog.run({"ids": torch.from_numpy(ids), "x": x_bf16}))
    np.testing.assert_array_equal(got, _out(prog.run({"ids": ids, "x": x_bf16.float().numpy()})))


@pytest.mark.parametrize(
    "bad, message",
    [
        ([[1, 2], [3]], "not a rectangular numeric array"),
        (np.array([[1, 2, 3]], dtype=object), "not a numeric array"),
        (np.array([["a", "b", "c"]]), "not a numeric array"),
        (torch.ones(1, 3, dtype=torch.complex64), "not a numeric array"),
        (np.ones((1, 3), np.float32), "expected integer input"),
    ],
)
def test_unreadable_feeds_are_input_errors(embed, bad, message):
    prog, _, x = embed
    with pytest.raises(InputError, match=message):
        prog.run({"ids": bad, "x": x})


def test_ragged_float_feed_and_non_string_keys(embed):
    prog, ids, _ = embed
    with pytest.raises(InputError, match="not a rectangular"):
        prog.run({"ids": ids, "x": [[[1.0] * 4, [1.0] * 3]]})
    with pytest.raises(InputError, match="unknown input '0'"):
        prog.run({0: ids, "ids": ids, "x": np.ones((1, 3, 4), np.float32)})


class _Sum(torch.nn.Module):
    def forward(self, x):
        return x.sum(), (x * x).mean()


def test_rank_zero_outputs_come_back_with_shape_one():
    x = torch.randn(2, 3)
    prog = interp.load(convert(_Sum().eval(), x))
    out = prog.run({"x": x.numpy()})
    assert [out[o.name].shape for o in prog.outputs] == [(1,), (1,)]
    np.testing.assert_allclose(out[prog.outputs[0].name], [float(x.sum())], rtol=1e-5)
    out16 = prog.run({"x": x.numpy()}, precision="fp16")
    assert [out16[o.name].shape for o in prog.outputs] == [(1,), (1,)]


def test_rank_zero_outputs_of_the_compiled_path_match():
    from devicefit.interp.compiled import compile_program

    x = torch.randn(2, 3)
    prog = interp.load(convert(_Sum().eval(), x))
    compiled = compile_program(prog)
    for _ in range(2):  # the first call compiles, the second runs the compiled graph
        out = compiled.run({"x": x.numpy()})
    assert [out[o.name].shape for o in prog.outputs] == [(1,), (1,)]
