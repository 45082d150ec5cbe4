"""Indexing / selection / sorting kernels (interp/ops/indexing.py) against numpy loops, plus converted models."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from devicefit import interp
from devicefit.errors import InputError
from devicefit.interp.ops import indexing as K
from tests.helpers import convert, rel_error

DTYPES = [np.float32, np.int32]


def arr(shape, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        # distinct values, so sorts have no ties and max/min are unambiguous
        return (
            rng.permutation(np.prod(shape, dtype=int) * 3)[: np.prod(shape, dtype=int)]
            .reshape(shape)
            .astype(dtype)
            - 20
        )
    return rng.standard_normal(shape).astype(dtype)


def idx(shape, high, seed=1, low=0):
    return np.random.default_rng(seed).integers(low, high, shape).astype(np.int32)


def t(a):
    return torch.from_numpy(np.array(a))  # a contiguous copy that keeps 0-d arrays 0-d


def same(out, ref, exact=True):
    assert isinstance(out, torch.Tensor)
    ref = np.asarray(ref)
    assert tuple(out.shape) == ref.shape, (tuple(out.shape), ref.shape)
    assert out.numpy().dtype == ref.dtype, (out.dtype, ref.dtype)
    if exact:
        np.testing.assert_array_equal(out.numpy(), ref)
    else:
        np.testing.assert_allclose(out.numpy(), ref, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- gathers
def _gather_ref(x, indices, axis, batch_dims):
    """coremltools' compute_gather: np.take per flattened batch."""
    if batch_dims == 0:
        return np.take(x, indices, axis)
    batch = x.shape[:batch_dims]
    xs = x.reshape((-1, *x.shape[batch_dims:]))
    ids = indices.reshape((-1, *indices.shape[batch_dims:]))
    res = np.stack([np.take(p, i, axis - batch_dims) for p, i in zip(xs, ids)])
    return res.reshape(batch + res.shape[1:])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("x_shape", "i_shape", "axis", "batch_dims"),
    [
        ((5,), (3,), 0, 0),
        ((4, 5), (2, 3), 1, 0),
        ((4, 5, 6), (), -2, 0),
        ((2, 5, 3), (2, 4), 1, 1),
        ((2, 3, 5, 4), (2, 3, 2), 2, 2),
        ((2, 3, 5), (2, 6), 2, 1),
    ],
)
def test_gather(x_shape, i_shape, axis, batch_dims, dtype):
    x = arr(x_shape, dtype)
    size = x_shape[axis]
    indices = idx(i_shape, size, low=-size)  # negative indices count from the end
    same(K.gather(t(x), t(indices), axis, batch_dims), _gather_ref(x, indices, axis, batch_dims))


@pytest.mark.parametrize("validate", [False, True])
def test_gather_out_of_range_raises_input_error(validate):
    x = arr((4, 5))
    with pytest.raises(
        InputError, match=r"gather: index 5 at position \(1,\) is out of range for an axis of size 5"
    ) as e:
        K.gather(t(x), t(np.array([0, 5], np.int32)), axis=1, validate_indices=validate)
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="index -5"):
        K.gather(t(x), t(np.array([-5], np.int32)), axis=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_along_axis(axis, dtype):
    x = arr((3, 4, 5), dtype)
    shape = list(x.shape)
    shape[axis] = 6
    indices = idx(shape, x.shape[axis])
    same(K.gather_along_axis(t(x), t(indices), axis), np.take_along_axis(x, indices, axis))
    with pytest.raises(InputError, match="gather_along_axis"):
        K.gather_along_axis(t(x), t(indices + x.shape[axis]), axis)


def _gather_nd_ref(x, indices, batch_dims):
    out_shape = indices.shape[:-1] + x.shape[batch_dims + indices.shape[-1] :]
    out = np.empty(out_shape, x.dtype)
    for pos in itertools.product(*(range(d) for d in indices.shape[:-1])):
        out[pos] = x[tuple(pos[:batch_dims]) + tuple(indices[pos])]
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("x_shape", "i_shape", "batch_dims"),
    [
        ((4, 5), (3, 2), 0),
        ((4, 5, 6), (2, 3, 1), 0),
        ((4, 5, 6), (7, 3), 0),
        ((2, 5, 6), (2, 4, 2), 1),
        ((2, 3, 4, 5), (2, 3, 1), 2),
    ],
)
def test_gather_nd(x_shape, i_shape, batch_dims, dtype):
    x = arr(x_shape, dtype)
    dims = np.array(x_shape[batch_dims : batch_dims + i_shape[-1]])
    indices = (np.random.default_rng(3).integers(0, 1000, i_shape) % dims).astype(np.int32)
    same(K.gather_nd(t(x), t(indices), batch_dims), _gather_nd_ref(x, indices, batch_dims))
    with pytest.raises(InputError, match="gather_nd"):
        K.gather_nd(t(x), t(indices + dims.astype(np.int32)), batch_dims)


# ---------------------------------------------------------------- scatters
_NP_MODES = {
    "update": lambda old, new: new,
    "add": lambda old, new: old + new,
    "sub": lambda old, new: old - new,
    "mul": lambda old, new: old * new,
    "div": lambda old, new: old / new,
    "max": np.maximum,
    "min": np.minimum,
}
MODES = list(_NP_MODES)


def _apply(out, dst, new, mode):
    out[dst] = _NP_MODES[mode](out[dst], new)


def _scatter_ref(data, indices, updates, axis, mode):
    out = data.copy()
    for k, i in enumerate(indices):
        dst, src = [slice(None)] * data.ndim, [slice(None)] * data.ndim
        dst[axis], src[axis] = i, k
        _apply(out, tuple(dst), updates[tuple(src)], mode)
    return out


def _updates(shape, mode, seed=5):
    u = arr(shape, np.float32, seed=seed)
    return np.abs(u) + 0.5 if mode in ("mul", "div") else u  # keep products / quotients tame


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_scatter(axis, mode):
    data = arr((4, 5, 3))
    n = data.shape[axis]
    # duplicate indices only where the result does not depend on the order of application
    indices = np.array([n - 1, 0, 1] if mode == "update" else [1, 0, 1, n - 1], np.int32)
    shape = list(data.shape)
    shape[axis] = len(indices)
    updates = _updates(shape, mode)
    ref = _scatter_ref(data, indices, updates, axis % 3, mode)
    same(K.scatter(t(data), t(indices), t(updates), axis, mode), ref, exact=mode != "div")


def test_scatter_int32_and_doc_example():
    data = np.array([[1, 2, 3], [4, 5, 6]], np.int32)
    out = K.scatter(
        t(data), t(np.array([1, 0], np.int32)), t(np.array([[5, 6, 7], [8, 9, 10]], np.int32)), 0, "add"
    )
    same(out, np.array([[9, 11, 13], [9, 11, 13]], np.int32))
    with pytest.raises(InputError, match="scatter"):
        K.scatter(t(data), t(np.array([2], np.int32)), t(data[:1]), 0, "add")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("axis", [0, 2])
def test_scatter_along_axis(axis, mode):
    data = arr((3, 4, 5))
    shape = list(data.shape)
    shape[axis] = 2
    if mode == "update":  # distinct targets along the axis
        indices = np.broadcast_to(
            np.array([2, 0], np.int32).reshape([-1 if a == axis else 1 for a in range(3)]), shape
        ).copy()
    else:
        indices = idx(shape, data.shape[axis], seed=2)
    updates = _updates(shape, mode)
    ref = data.copy()
    for pos in itertools.product(*(range(d) for d in shape)):
        dst = list(pos)
        dst[axis] = indices[pos]
        _apply(ref, tuple(dst), updates[pos], mode)
    same(K.scatter_along_axis(t(data), t(indices), t(updates), axis, mode), ref, exact=mode != "div")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("d_shape", "i_shape"), [((4, 5), (3, 2)), ((4, 5, 3), (2, 2, 1)), ((6,), (4, 1))])
def test_scatter_nd(d_shape, i_shape, mode):
    data = arr(d_shape)
    depth = i_shape[-1]
    if mode == "update":  # distinct targets: walk a permutation of the flat index space
        flat = np.random.default_rng(4).permutation(int(np.prod(d_shape[:depth])))[
            : int(np.prod(i_shape[:-1]))
        ]
        indices = np.stack(np.unravel_index(flat, d_shape[:depth]), -1).reshape(i_shape).astype(np.int32)
    else:
        indices = (np.random.default_rng(4).integers(0, 100, i_shape) % np.array(d_shape[:depth])).astype(
            np.int32
        )
    updates = _updates(i_shape[:-1] + d_shape[depth:], mode)
    ref = data.copy()
    for pos in itertools.product(*(range(d) for d in i_shape[:-1])):
        _apply(ref, tuple(indices[pos]), updates[pos], mode)
    same(K.scatter_nd(t(data), t(indices), t(updates), mode), ref, exact=mode != "div")


# ---------------------------------------------------------------- selection and sorting
@pytest.mark.parametrize("dtype", [*DTYPES, np.bool_])
def test_select_broadcasts(dtype):
    cond = np.random.default_rng(0).integers(0, 2, (3, 1, 4)).astype(bool)
    a = arr((1, 5, 4), dtype).astype(dtype)
    b = arr((3, 5, 1), dtype, seed=9).astype(dtype)
    same(K.select(t(cond), t(a), t(b)), np.where(cond, a, b))


def _sort_ref(x, axis, ascending):
    order = np.argsort(x if ascending else -x, axis=axis, kind="stable")
    return np.take_along_axis(x, order, axis), order.astype(np.int32)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("axis", "k", "ascending"), [(-1, 2, False), (0, 3, True), (1, -1, False), (1, 1, True)]
)
def test_topk(axis, k, ascending, dtype):
    x = arr((4, 5, 6), dtype)
    values, order = _sort_ref(x, axis, ascending)
    k_ = x.shape[axis] if k == -1 else k
    values, order = np.take(values, range(k_), axis), np.take(order, range(k_), axis)
    v, i = K.topk(t(x), k, axis, ascending)
    same(v, values)
    same(i, order)
    only = K.topk(t(x), k, axis, ascending, return_indices=False)
    assert isinstance(only, torch.Tensor)
    same(only, values)


def test_topk_ties_take_the_lowest_index_first():
    x = np.array([[1.0, 3.0, 3.0, 2.0, 3.0]], np.float32)
    _, i = K.topk(t(x), 3)
    same(i, np.array([[1, 2, 4]], np.int32))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("axis", "ascending"), [(-1, False), (0, True), (1, False)])
def test_argsort(axis, ascending, dtype):
    x = arr((3, 4, 5), dtype)
    same(K.argsort(t(x), axis, ascending), _sort_ref(x, axis, ascending)[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize(
    ("exclusive", "reverse"), [(False, False), (True, False), (False, True), (True, True)]
)
def test_cumsum(axis, exclusive, reverse, dtype):
    x = arr((3, 4, 5), dtype)
    y = np.flip(x, axis) if reverse else x
    ref = np.cumsum(y, axis=axis, dtype=dtype)
    if exclusive:
        ref = np.concatenate(
            [np.zeros_like(np.take(ref, [0], axis)), np.take(ref, range(x.shape[axis] - 1), axis)], axis
        )
    ref = np.flip(ref, axis) if reverse else ref
    same(K.cumsum(t(x), axis, exclusive, reverse), ref, exact=dtype == np.int32)


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_one_hot(axis):
    indices = np.array([[0, 3, 2], [4, 1, 7]], np.int32)  # 7 is out of range: an all-off vector
    eye = np.where(np.eye(5, dtype=bool), np.float32(2.5), np.float32(-1.0))
    ref = np.where((indices < 5)[..., None], eye[np.minimum(indices, 4)], np.float32(-1.0))
    ref = np.moveaxis(ref, -1, axis)
    same(K.one_hot(t(indices), 5, axis, torch.tensor(2.5), torch.tensor(-1.0)), ref)
    same(K.one_hot(t(indices[0]), 4), np.eye(4, dtype=np.int32)[[0, 3, 2]])  # default on/off are int32


@pytest.mark.parametrize("dtype", [*DTYPES, np.bool_])
def test_non_zero(dtype):
    x = (np.random.default_rng(0).integers(0, 3, (3, 4, 2))).astype(dtype)
    same(K.non_zero(t(x)), np.argwhere(x).astype(np.int32))
    same(K.non_zero(t(np.zeros((2, 3), dtype))), np.zeros((0, 2), np.int32))


@pytest.mark.parametrize("dtype", [*DTYPES, np.bool_])
@pytest.mark.parametrize(("lower", "upper"), [(-1, -1), (0, -1), (-1, 0), (0, 0), (1, 2)])
def test_band_part(lower, upper, dtype):
    x = arr((2, 4, 5), dtype) if dtype != np.bool_ else np.ones((2, 4, 5), bool)
    m, n = np.meshgrid(np.arange(4), np.arange(5), indexing="ij")
    band = ((lower < 0) | (m - n <= lower)) & ((upper < 0) | (n - m <= upper))
    same(K.band_part(t(x), lower, upper), np.where(band, x, np.zeros((), dtype)))


# ---------------------------------------------------------------- end to end
class Indexing(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("picks", torch.tensor([2, 0]))

    def forward(self, x, idx):
        v, i = torch.topk(x, 3, dim=-1)
        lv, li = torch.topk(x, 2, dim=1, largest=False)
        s, si = torch.sort(x, dim=-1, descending=True)
        sel = torch.index_select(x, 1, self.picks)
        oh = F.one_hot(idx[0, 0].long(), 8).float()
        return (
            torch.gather(x, 2, idx),
            v,
            i,
            lv,
            li,
            s,
            si,
            torch.argsort(x, dim=-1),
            torch.cumsum(x, dim=1),
            torch.cumsum(x.flip(-1), -1).flip(-1),
            sel,
            x.masked_fill(x > 0.5, -1.0),
            torch.where(x > 0, x, x * 0.1),
            oh,
            x.scatter(2, idx, torch.ones_like(idx, dtype=x.dtype)),
            torch.triu(x[0, :3, :3]),
            x[idx[0, 0, :2] % 2, :, idx[1, 0, :2]],
        )


@pytest.mark.parametrize("target", ["iOS16", "iOS18"])
def test_end_to_end_matches_torch(target):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8)
    index = torch.randint(0, 3, (2, 3, 4), dtype=torch.int32)
    module = Indexing()
    prog = interp.load(convert(module, (x, index), target=target, input_names=["x", "idx"]))
    for op in ("gather", "gather_along_axis", "gather_nd", "topk", "argsort", "cumsum", "one_hot", "select"):
        assert op in prog.op_counts, op
    out = prog.run({"x": x.numpy(), "idx": index.numpy()}, strict=True)
    expected = module(x, index)
    assert len(prog.outputs) == len(expected)
    for spec, ref in zip(prog.outputs, expected):
        assert out[spec.name].shape == tuple(ref.shape), spec.name
        assert rel_error(out[spec.name], ref.numpy()) <= 1e-5, spec.name
