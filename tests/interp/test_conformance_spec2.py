"""The MIL op spec, op by op (continued): selection, sorting, layout and cast cases, each a MIL program
against numpy. Ops whose output order the spec leaves open (topk with ``sort=False``) compare as sets."""

from __future__ import annotations

import numpy as np
import pytest

from tests.interp import milprog

RNG = np.random.default_rng(11)
F = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
F2 = RNG.standard_normal((4, 6)).astype(np.float32)
I = RNG.integers(-9, 10, (3, 4)).astype(np.int32)
B = RNG.integers(0, 2, (3, 4)).astype(bool)
SEQ = RNG.standard_normal((3, 5, 2)).astype(np.float32)


def _reverse_sequence(x, lengths, seq_axis, batch_axis):
    out = x.copy()
    for b, n in enumerate(lengths):
        index = [slice(None)] * x.ndim
        index[batch_axis] = b
        index[seq_axis] = slice(0, n)
        out[tuple(index)] = np.flip(x[tuple(index)], axis=seq_axis - (batch_axis < seq_axis))
    return out


def _pixel_shuffle(x, r):
    n, c, h, w = x.shape
    return (
        x.reshape(n, c // (r * r), r, r, h, w)
        .transpose(0, 1, 4, 2, 5, 3)
        .reshape(n, c // (r * r), h * r, w * r)
    )


CASES = {
    "topk_ascending": (
        "iOS15",
        {"x": F2},
        lambda mb, x: mb.topk(x=x, k=3, axis=-1, ascending=True),
        lambda x: [np.sort(x, -1)[:, :3], np.argsort(x, -1)[:, :3].astype(np.int32)],
    ),
    "topk_axis0_descending": (
        "iOS15",
        {"x": F2},
        lambda mb, x: mb.topk(x=x, k=2, axis=0),
        lambda x: [-np.sort(-x, 0)[:2], np.argsort(-x, 0)[:2].astype(np.int32)],
    ),
    "topk_values_only": (
        "iOS16",
        {"x": F2},
        lambda mb, x: mb.topk(x=x, k=4, axis=1, return_indices=False),
        lambda x: -np.sort(-x, 1)[:, :4],
    ),
    "argsort_ascending": (
        "iOS15",
        {"x": F2},
        lambda mb, x: mb.argsort(x=x, axis=0, ascending=True),
        lambda x: np.argsort(x, 0).astype(np.int32),
    ),
    "argsort_descending_int": (
        "iOS15",
        {"x": np.int32(RNG.permutation(12).reshape(3, 4))},
        lambda mb, x: mb.argsort(x=x, axis=-1),
        lambda x: np.argsort(-x, -1).astype(np.int32),
    ),
    "one_hot_axis0": (
        "iOS15",
        {"i": np.int32([2, 0, 3])},
        lambda mb, i: mb.one_hot(indices=i, one_hot_vector_size=4, axis=0, on_value=5.0, off_value=-1.0),
        lambda i: np.where(np.arange(4)[:, None] == i[None, :], 5.0, -1.0),
    ),
    "non_zero_int": (
        "iOS15",
        {"x": I},
        lambda mb, x: mb.non_zero(x=x),
        lambda x: np.argwhere(x != 0).astype(np.int32),
    ),
    "concat_interleave": (
        "iOS15",
        {"x": F2, "y": F2 * 2},
        lambda mb, x, y: mb.concat(values=[x, y], axis=0, interleave=True),
        lambda x, y: np.stack([x, y], 1).reshape(8, 6),
    ),
    "split_sizes": (
        "iOS15",
        {"x": F2},
        lambda mb, x: mb.split(x=x, split_sizes=[1, 3, 2], axis=-1),
        lambda x: [x[:, :1], x[:, 1:4], x[:, 4:]],
    ),
    "split_num": (
        "iOS15",
        {"x": F2},
        lambda mb, x: mb.split(x=x, num_splits=2, axis=0),
        lambda x: [x[:2], x[2:]],
    ),
    "stack_last": (
        "iOS15",
        {"x": I, "y": -I},
        lambda mb, x, y: mb.stack(values=[x, y], axis=-1),
        lambda x, y: np.stack([x, y], -1),
    ),
    "tile_int": ("iOS15", {"x": I}, lambda mb, x: mb.tile(x=x, reps=[2, 1]), lambda x: np.tile(x, (2, 1))),
    "reverse_int": ("iOS15", {"x": I}, lambda mb, x: mb.reverse(x=x, axes=[0, -1]), lambda x: x[::-1, ::-1]),
    "reverse_sequence": (
        "iOS15",
        {"x": SEQ, "n": np.int32([2, 5, 0])},
        lambda mb, x, n: mb.reverse_sequence(x=x, lengths=n, seq_axis=1, batch_axis=0),
        lambda x, n: _reverse_sequence(x, n, 1, 0),
    ),
    "sliding_windows": (
        "iOS15",
        {"x": F2},
        lambda mb, x: mb.sliding_windows(x=x, axis=1, size=3, stride=2),
        lambda x: np.stack([x[:, i : i + 3] for i in range(0, 4, 2)], 1),
    ),
    "range_1d_negative_step": (
        "iOS15",
        {"s": np.float32([2.5])},
        lambda mb, s: mb.range_1d(start=mb.squeeze(x=s), end=-1.0, step=-0.75),
        lambda s: np.arange(2.5, -1.0, -0.75, dtype=np.float32),
    ),
    "cast_float_to_int_truncates": (
        "iOS15",
        {"x": np.float32([-2.7, -0.5, 0.5, 2.7, 3.0])},
        lambda mb, x: mb.cast(x=x, dtype="int32"),
        lambda x: x.astype(np.int32),
    ),
    "cast_float_to_bool": (
        "iOS15",
        {"x": np.float32([0.0, -0.0, 0.1, -3.0])},
        lambda mb, x: mb.cast(x=x, dtype="bool"),
        lambda x: x != 0,
    ),
    # (Core ML has no bool model inputs: bools are made inside the program from int32)
    "cast_bool_to_float": (
        "iOS15",
        {"x": B.astype(np.int32)},
        lambda mb, x: mb.cast(x=mb.cast(x=x, dtype="bool"), dtype="fp32"),
        lambda x: (x != 0).astype(np.float32),
    ),
    "cast_int_to_bool": ("iOS15", {"x": I}, lambda mb, x: mb.cast(x=x, dtype="bool"), lambda x: x != 0),
    "select_broadcast_int": (
        "iOS15",
        {"c": B[:, :1].astype(np.int32), "a": I, "b": -I[:1]},
        lambda mb, c, a, b: mb.select(cond=mb.cast(x=c, dtype="bool"), a=a, b=b),
        lambda c, a, b: np.where(c != 0, a, b),
    ),
    "matmul_batch_broadcast": (
        "iOS15",
        {"x": F[:, :1], "y": RNG.standard_normal((3, 5, 2)).astype(np.float32)},
        lambda mb, x, y: mb.matmul(x=x, y=y),
        lambda x, y: np.matmul(x, y),
    ),
    "expand_dims_negative": (
        "iOS15",
        {"x": F2},
        lambda mb, x: mb.expand_dims(x=x, axes=[-1, 0]),
        lambda x: x[None, :, :, None],
    ),
    "squeeze_all": ("iOS15", {"x": F[:1, :, :1]}, lambda mb, x: mb.squeeze(x=x), lambda x: x.squeeze()),
    "flatten2d_axis": (
        "iOS15",
        {"x": F},
        lambda mb, x: mb.flatten2d(x=x, axis=-1),
        lambda x: x.reshape(-1, 5),
    ),
    "pixel_shuffle": (
        "iOS15",
        {"x": RNG.standard_normal((1, 8, 2, 3)).astype(np.float32)},
        lambda mb, x: mb.pixel_shuffle(x=x, upscale_factor=2),
        lambda x: _pixel_shuffle(x, 2),
    ),
    "log_epsilon": (
        "iOS15",
        {"x": np.abs(F2)},
        lambda mb, x: mb.log(x=x, epsilon=0.5),
        lambda x: np.log(x + 0.5),
    ),
    "rsqrt_epsilon": (
        "iOS15",
        {"x": np.abs(F2)},
        lambda mb, x: mb.rsqrt(x=x, epsilon=0.25),
        lambda x: 1 / np.sqrt(x + 0.25),
    ),
    "inverse_epsilon": (
        "iOS15",
        {"x": np.abs(F2)},
        lambda mb, x: mb.inverse(x=x, epsilon=0.1),
        lambda x: 1 / (x + 0.1),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_spec_case(name):
    target, inputs, build, reference = CASES[name]
    out = milprog.run(milprog.named(build, list(inputs)), inputs, target=target)
    got = out if isinstance(out, list) else [out]
    want = reference(**inputs)
    want = want if isinstance(want, list) else [want]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        w = np.asarray(w)
        assert g.shape == w.shape, (g.shape, w.shape)
        if w.dtype.kind in "biu":
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w.astype(np.float32), rtol=1e-5, atol=1e-5)


def test_topk_unsorted_returns_the_top_k_set():
    from coremltools.converters.mil import Builder as mb

    def prog(x):
        return mb.topk(x=x, k=3, axis=-1, sort=False)

    values, indices = milprog.run(prog, {"x": F2}, target="iOS16")
    np.testing.assert_allclose(np.sort(values, -1), np.sort(-np.sort(-F2, -1)[:, :3], -1))
    np.testing.assert_array_equal(np.take_along_axis(F2, indices, -1), values)
