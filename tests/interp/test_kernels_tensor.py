"""Shape / layout kernels (interp/ops/tensor.py) against numpy references, plus converted torch models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from devicefit import interp
from devicefit.interp.ops import tensor as K
from tests.helpers import convert, rel_error

DTYPES = [np.float32, np.int32]
SHAPES = [(6,), (2, 3), (2, 3, 4), (1, 2, 3, 4)]


def arr(shape, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(-50, 50, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def t(a):
    return torch.from_numpy(np.array(a))  # a contiguous copy that keeps 0-d arrays 0-d


def same(out, ref):
    """Exact match of values, shape and dtype (layout ops move values, they never compute)."""
    assert isinstance(out, torch.Tensor)
    ref = np.asarray(ref)
    assert tuple(out.shape) == ref.shape, (tuple(out.shape), ref.shape)
    assert out.numpy().dtype == ref.dtype, (out.dtype, ref.dtype)
    np.testing.assert_array_equal(out.numpy(), ref)


# ---------------------------------------------------------------- reshapes
@pytest.mark.parametrize("dtype", [*DTYPES, np.bool_])
@pytest.mark.parametrize(
    ("shape", "target", "expected"),
    [
        ((2, 3, 4), [4, -1], (4, 6)),
        ((2, 3, 4), [0, -1], (2, 12)),
        ((2, 6, 2), [0, 3, -1], (2, 3, 4)),  # iOS15: 0 copies the dim at the same index
        ((6,), [], None),
    ],
)
def test_reshape_ios15(shape, target, expected, dtype):
    if expected is None:  # a 6-element tensor cannot become a scalar: use a 1-element one
        shape, expected = (1,), ()
    a = arr(shape, dtype)
    same(K.reshape(t(a), target), a.reshape(expected))


@pytest.mark.parametrize(
    ("shape", "target", "expected"),
    [
        ((2, 50), [1, 0, -1, 0], (1, 1, 2, 50)),  # the example of the iOS17 op docs
        ((2, 3, 4), [0, -1], (3, 8)),  # right-aligned: shape[0] pairs with x.shape[1]
        ((2, 3, 4), [-1, 0, 0], (2, 3, 4)),
    ],
)
def test_reshape_ios17_zeros_are_right_aligned(shape, target, expected):
    a = arr(shape)
    same(K.reshape_ios17(t(a), target), a.reshape(expected))


def test_reshape_like():
    a = arr((6, 30))
    refs = [torch.zeros(2, 3, 4), torch.zeros(1, 5, 6)]
    scalar = torch.tensor
    # the example of the MIL docs: shape (2, 3) from the first ref, (5, 6) from the second
    out = K.reshape_like(
        t(a), refs, [scalar(0), scalar(1)], [scalar(2), scalar(0)], [scalar(False), scalar(True)]
    )
    same(out, a.reshape(2, 3, 5, 6))
    out = K.reshape_like(t(a[:, :5]), [torch.zeros(4, 3, 10)], [scalar(1)], [scalar(3)], [scalar(False)])
    same(out, a[:, :5].reshape(3, 10))


@pytest.mark.parametrize("dtype", [*DTYPES, np.bool_])
@pytest.mark.parametrize("shape", SHAPES)
def test_transpose(shape, dtype):
    a = arr(shape, dtype)
    perm = list(np.random.default_rng(len(shape)).permutation(len(shape)))
    same(K.transpose(t(a), perm), np.transpose(a, perm))


@pytest.mark.parametrize(
    ("shape", "axis", "expected"),
    [
        ((3,), -1, (1, 3)),
        ((3,), 1, (3, 1)),
        ((4, 3), -1, (4, 3)),
        ((2, 3, 2), -1, (6, 2)),
        ((5, 5, 2), 1, (5, 10)),
    ],
)
def test_flatten2d_doc_examples(shape, axis, expected):
    a = arr(shape, np.int32)
    same(K.flatten2d(t(a), axis), a.reshape(expected))


@pytest.mark.parametrize("dtype", DTYPES)
def test_squeeze_and_expand_dims(dtype):
    a = arr((1, 3, 1, 2), dtype)
    same(K.squeeze(t(a)), a.reshape(3, 2))
    same(K.squeeze(t(a), [-2]), a.reshape(1, 3, 2))
    same(K.squeeze(t(a), [0, 1]), a.reshape(3, 1, 2))  # size-3 axis ignored, as PyTorch does
    one = arr((1, 1), dtype)
    same(K.squeeze(t(one), None), one[0, 0])  # to a scalar
    b = arr((2, 3), dtype)
    for axes, shape in [
        ([0], (1, 2, 3)),
        ([-1], (2, 3, 1)),
        ([0, 1], (1, 1, 2, 3)),
        ([-2, -1], (2, 3, 1, 1)),
    ]:
        same(K.expand_dims(t(b), axes), b.reshape(shape))


# ---------------------------------------------------------------- joining and splitting
@pytest.mark.parametrize("dtype", [*DTYPES, np.bool_])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat(axis, dtype):
    parts = [arr((2, 3, 4), dtype, seed=i) for i in range(3)]
    same(K.concat([t(p) for p in parts], axis), np.concatenate(parts, axis))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat_interleave(axis):
    parts = [arr((3, 2, 2), np.int32, seed=i) for i in range(3)]
    out = K.concat([t(p) for p in parts], axis, interleave=True)
    ref = np.empty_like(np.concatenate(parts, axis))
    for k, p in enumerate(parts):
        index = [slice(None)] * 3
        index[axis] = slice(k, None, 3)
        ref[tuple(index)] = p
    same(out, ref)
    # the example of the MIL docs
    in1, in2 = np.array([[1, 2], [3, 4], [5, 6]]), np.array([[7, 8], [9, 10], [11, 12]])
    same(K.concat([t(in1), t(in2)], 0, True), [[1, 2], [7, 8], [3, 4], [9, 10], [5, 6], [11, 12]])


def test_concat_of_scalars_stacks():
    same(
        K.concat([torch.tensor(1, dtype=torch.int32), torch.tensor(5, dtype=torch.int32)], 0),
        np.array([1, 5], np.int32),
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_split(dtype):
    a = arr((2, 6, 3), dtype)
    outs = K.split(t(a), axis=1, num_splits=3)
    assert isinstance(outs, tuple) and len(outs) == 3
    for o, r in zip(outs, np.split(a, 3, axis=1)):
        same(o, r)
    outs = K.split(t(a), axis=-2, split_sizes=[1, 4, 1])
    for o, r in zip(outs, np.split(a, [1, 5], axis=1)):
        same(o, r)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_stack(axis, dtype):
    parts = [arr((2, 3), dtype, seed=i) for i in range(4)]
    same(K.stack([t(p) for p in parts], axis), np.stack(parts, axis))


@pytest.mark.parametrize("dtype", [*DTYPES, np.bool_])
@pytest.mark.parametrize(("shape", "reps"), [((3,), [2]), ((2, 3), [1, 3]), ((2, 1, 3), [2, 2, 1])])
def test_tile(shape, reps, dtype):
    a = arr(shape, dtype)
    same(K.tile(t(a), reps), np.tile(a, reps))


# ---------------------------------------------------------------- slicing
SLICES = [
    # begin, end, stride, begin_mask, end_mask, squeeze_mask, numpy index
    ([0, 1, 0], [2, 3, 4], None, None, None, None, np.s_[0:2, 1:3, 0:4]),
    ([0, 0, 1], [2, 3, 4], [1, 1, 2], None, None, None, np.s_[:, :, 1::2]),
    ([0, -1, 3], [2, 0, 0], [1, -1, -2], None, [False, False, True], None, np.s_[0:2, -1:0:-1, 3::-2]),
    ([1, 0, 0], [0, 3, 4], [1, 1, 1], None, None, [True, False, False], np.s_[1, 0:3, 0:4]),
    (
        [0, 2, -1],
        [0, 0, 0],
        [1, 1, 1],
        [True, False, False],
        [True, True, False],
        [False, False, True],
        np.s_[:, 2:, -1],
    ),
    ([5, -10, 0], [9, 10, 4], [1, 1, 3], None, None, None, np.s_[5:9, -10:10, 0:4:3]),  # clamped / empty
    ([0, 0, 0], [0, 0, 0], [-1, -1, -1], [True] * 3, [True] * 3, None, np.s_[::-1, ::-1, ::-1]),
    ([-1, -2, 2], [0, 0, 0], None, None, None, [True, True, True], np.s_[-1, -2, 2]),  # to a scalar
]


@pytest.mark.parametrize("dtype", [*DTYPES, np.bool_])
@pytest.mark.parametrize("case", SLICES)
def test_slice_by_index(case, dtype):
    *args, index = case
    a = arr((2, 3, 4), dtype)
    same(K.slice_by_index(t(a), *args), a[index])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [c for c in SLICES if np.empty((2, 3, 4))[c[-1]].ndim > 0])
def test_slice_update(case, dtype):
    *args, index = case
    a = arr((2, 3, 4), dtype)
    update = arr(a[index].shape, dtype, seed=7)
    ref = a.copy()
    ref[index] = update
    out = K.slice_update(t(a), t(update), *args)
    same(out, ref)
    np.testing.assert_array_equal(a, arr((2, 3, 4), dtype))  # the input was not modified


@pytest.mark.parametrize("dtype", [*DTYPES, np.bool_])
def test_slice_by_size(dtype):
    a = arr((3, 4, 5), dtype)
    same(K.slice_by_size(t(a), [1, 0, 2], [2, -1, 3]), a[1:3, 0:, 2:5])
    same(K.slice_by_size(t(a), [-2, -4, 0], [1, 2, -1]), a[1:2, 0:2, 0:])


@pytest.mark.parametrize("dtype", [*DTYPES, np.bool_])
@pytest.mark.parametrize("axes", [None, [0], [-1], [0, 2]])
def test_reverse(axes, dtype):
    a = arr((2, 3, 4), dtype)
    same(K.reverse(t(a), axes), np.flip(a, axis=None if axes is None else tuple(axes)))


def _reverse_sequence_ref(x, lengths, seq_axis, batch_axis):
    out = x.copy()
    for b, n in enumerate(lengths):
        src = [slice(None)] * x.ndim
        src[batch_axis], src[seq_axis] = b, slice(0, n)
        dst = list(src)
        dst[seq_axis] = slice(n - 1, None, -1) if n else slice(0, 0)
        out[tuple(src)] = x[tuple(dst)]
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("seq_axis", "batch_axis"), [(1, 0), (0, 1), (2, 0), (-1, 1)])
def test_reverse_sequence(seq_axis, batch_axis, dtype):
    a = arr((3, 4, 5), dtype)
    nb = a.shape[batch_axis]
    lengths = np.array([a.shape[seq_axis], 0, 2, 1][:nb], np.int32)
    out = K.reverse_sequence(t(a), t(lengths), seq_axis, batch_axis)
    same(out, _reverse_sequence_ref(a, lengths, seq_axis % 3, batch_axis))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("axis", "size", "stride"), [(1, 2, 1), (0, 3, 2), (-1, 2, 3)])
def test_sliding_windows(axis, size, stride, dtype):
    a = arr((5, 4, 7), dtype)
    windows = np.lib.stride_tricks.sliding_window_view(a, size, axis=axis)  # window axis last
    windows = np.moveaxis(windows, -1, axis % 3 + 1)
    index = [slice(None)] * 4
    index[axis % 3] = slice(None, None, stride)
    same(K.sliding_windows(t(a), axis, size, stride), windows[tuple(index)])


# ---------------------------------------------------------------- padding
@pytest.mark.parametrize(
    ("mode", "np_mode"), [("constant", "constant"), ("reflect", "reflect"), ("replicate", "edge")]
)
@pytest.mark.parametrize(
    ("shape", "pad"), [((2, 5, 6), [1, 2, 3, 0]), ((7,), [3, 2]), ((1, 3, 4, 5), [0, 1, 2, 3, 1, 4])]
)
def test_pad(shape, pad, mode, np_mode):
    a = arr(shape)
    widths = [(0, 0)] * (len(shape) - len(pad) // 2) + [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]
    kwargs = {"constant_values": 0.25} if mode == "constant" else {}
    same(K.pad(t(a), pad, mode, 0.25), np.pad(a, widths, np_mode, **kwargs))


# ---------------------------------------------------------------- creation
@pytest.mark.parametrize("dtype", [*DTYPES, np.bool_])
def test_shape_fill_fill_like_identity(dtype):
    a = arr((2, 3, 4), dtype)
    same(K.shape(t(a)), np.array([2, 3, 4], np.int32))
    same(K.shape(torch.tensor(1.0)), np.zeros((0,), np.int32))
    value = np.array(a.reshape(-1)[0])
    same(K.fill([3, 2], t(value)), np.full((3, 2), value))
    same(K.fill([2]), np.zeros(2, np.float32))
    same(K.fill_like(t(a), t(value)), np.full(a.shape, value))
    assert K.identity(t(a)) is not None
    same(K.identity(t(a)), a)


@pytest.mark.parametrize(
    ("start", "end", "step", "dtype"),
    [
        (0, 7, 1, np.int32),
        (10, -3, -4, np.int32),
        (0.5, 3.2, 0.7, np.float32),
        (1.0, -1.0, -0.25, np.float32),
    ],
)
def test_range_1d(start, end, step, dtype):
    out = K.range_1d(t(np.array(end, dtype)), t(np.array(start, dtype)), t(np.array(step, dtype)))
    ref = np.arange(dtype(start), dtype(end), dtype(step)).astype(dtype)
    assert out.numpy().dtype == dtype and out.shape == ref.shape
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-6)


# ---------------------------------------------------------------- space <-> depth / batch
def test_depth_to_space_is_tensorflow_dcr_and_space_to_depth_inverts_it():
    a = arr((2, 12, 3, 2))
    bs, c_out = 2, 3
    ref = np.empty((2, c_out, 3 * bs, 2 * bs), np.float32)
    for i in range(bs):
        for j in range(bs):
            for c in range(c_out):
                ref[:, c, i::bs, j::bs] = a[:, (i * bs + j) * c_out + c]
    out = K.depth_to_space(t(a), bs)
    same(out, ref)
    same(K.space_to_depth(out, bs), a)
    # the example of coremltools' op tests
    example = np.array([9.0, 5, 1, 3], np.float32)
    same(K.depth_to_space(t(example.reshape(1, 4, 1, 1)), 2), example.reshape(1, 1, 2, 2))


def test_space_to_batch_matches_coremltools_example_and_batch_to_space_inverts_it():
    x = np.array([[[[1, 2, 3, 4], [5, 6, 7, 8]]], [[[9, 10, 11, 12], [13, 14, 15, 16]]]], np.float32)
    ref = np.array(
        [[0, 1, 3], [0, 9, 11], [0, 2, 4], [0, 10, 12], [0, 5, 7], [0, 13, 15], [0, 6, 8], [0, 14, 16]]
    )
    out = K.space_to_batch(t(x), [2, 2], [0, 0, 2, 0])
    same(out, ref.reshape(8, 1, 1, 3).astype(np.float32))
    same(K.batch_to_space(out, [2, 2], [0, 0, 2, 0]), x)
    a = arr((2, 3, 4, 6))
    same(K.batch_to_space(K.space_to_batch(t(a), [2, 3], [1, 1, 0, 3]), [2, 3], [1, 1, 0, 3]), a)


@pytest.mark.parametrize("f", [2, 3])
def test_pixel_shuffle_formula(f):
    a = arr((2, 2 * f * f, 3, 2))
    ref = np.empty((2, 2, 3 * f, 2 * f), np.float32)
    for c in range(2):
        for i in range(f):
            for j in range(f):
                ref[:, c, i::f, j::f] = a[:, c * f * f + i * f + j]
    same(K.pixel_shuffle(t(a), f), ref)
    same(K.pixel_unshuffle(t(ref), f), a)


# ---------------------------------------------------------------- end to end
class Layout(torch.nn.Module):
    def forward(self, x):
        y = x.permute(0, 2, 3, 1).reshape(2, -1, 8)
        a, b = torch.chunk(y, 2, dim=1)
        c = torch.cat([b, a * 2], dim=-1)
        d = torch.flip(c, dims=[1]).narrow(1, 1, 5)
        e = x[..., 1::2] + x[:, :, ::2, :].transpose(2, 3)[..., :2, :].sum()
        u = F.pixel_unshuffle(F.pixel_shuffle(x, 2) * 3, 2)
        s = torch.stack([x[:, 0], x[:, 1]], 1).unsqueeze(0).squeeze(0)
        first, rest = torch.split(x, [1, 3], dim=1)
        return d, e, u, s, rest - first


class Pads(torch.nn.Module):
    def forward(self, x):
        return (
            F.pad(x, (1, 2, 2, 1), mode="reflect"),
            F.pad(x, (2, 1, 0, 3), mode="replicate"),
            F.pad(x, (1, 1, 1, 1), value=0.5),
            x.repeat(1, 2, 1, 3),
            x.flatten(1),
        )


class Inplace(torch.nn.Module):
    def forward(self, x):
        y = x.clone()
        y[:, 1:3] = x[:, :2] * 2
        return y, torch.tril(x[0, :4, :4], diagonal=1), torch.repeat_interleave(x[:, :2], 2, dim=1)


class DynamicShape(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("rows", torch.tensor([0]))
        self.register_buffer("cols", torch.tensor([1]))

    def forward(self, x):
        b = x.shape[0]
        y = x.clone()
        y[self.rows, self.cols] += 5.0  # index_put with accumulate -> scatter_nd
        return (
            x.reshape(b, -1, 2).transpose(1, 2).reshape(b, -1),
            torch.arange(b).float() + x.sum(),
            torch.zeros(b, 3) + 1.5,
            torch.nonzero(x > 0.5),
            y,
        )


def _check_e2e(module, example, target, feeds=None, **kwargs):
    prog = interp.load(convert(module, example, target=target, **kwargs))
    feeds = feeds or (example,)
    for feed in feeds:
        out = prog.run({"x": feed.numpy()}, strict=True)
        expected = module(feed)
        assert len(prog.outputs) == len(expected)
        for spec, ref in zip(prog.outputs, expected):
            assert out[spec.name].shape == tuple(ref.shape), spec.name
            assert rel_error(out[spec.name], ref.numpy()) <= 1e-5, spec.name
    return prog


@pytest.mark.parametrize("target", ["iOS16", "iOS18"])
@pytest.mark.parametrize(
    ("module", "shape"), [(Layout(), (2, 4, 6, 8)), (Pads(), (1, 3, 5, 7)), (Inplace(), (2, 5, 6))]
)
def test_end_to_end_matches_torch(module, shape, target):
    torch.manual_seed(0)
    prog = _check_e2e(module, torch.randn(shape), target)
    if isinstance(module, Inplace):
        # iOS18 lowers the in-place assignment to slice_update; older opsets to scatter
        assert ("slice_update" in prog.op_counts) == (target == "iOS18")


@pytest.mark.parametrize("target", ["iOS16", "iOS18"])
def test_end_to_end_dynamic_shapes(ct, target):
    torch.manual_seed(0)
    inputs = [ct.TensorType(name="x", shape=(ct.RangeDim(1, 8, 3), 4, 6))]
    feeds = (torch.randn(3, 4, 6), torch.randn(5, 4, 6), torch.randn(1, 4, 6))
    prog = _check_e2e(DynamicShape(), feeds[0], target, feeds=feeds, inputs=inputs)
    assert {"shape", "reshape", "range_1d", "fill", "non_zero", "scatter_nd"} <= set(prog.op_counts)
