"""``diag``, ``diag_embed``, ``take_along_dim``, ``index_add``, ``embedding_bag`` (coremltools 9.0 has none of
them) against PyTorch through the interpreter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.convert.elementwise_helpers import assert_close_elementwise, check_rescued, run_fn

FRONTENDS = ["torchscript", "torch.export"]
INF, NAN = float("inf"), float("nan")


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("offset", [0, 2, -1])
def test_diag_of_a_vector(frontend, offset):
    v = torch.tensor([1.5, -INF, NAN, 0.25])  # inf / NaN stay on the diagonal; zeros elsewhere (no inf * 0)
    check_rescued(lambda t: torch.diag(t, offset), (v,), frontend, "diag")


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("offset", [0, 1, -2, 7])
def test_diag_of_a_matrix(frontend, offset):
    x = torch.arange(12.0).reshape(3, 4)
    if offset == 7 and frontend == "torch.export":
        pytest.skip("an empty diagonal is a constant torch.export folds away")
    check_rescued(lambda t: torch.diag(t, offset) + 0, (x,), frontend, "diag")


def test_diag_keeps_ints():
    check_rescued(
        lambda t: torch.diag(t, 1), (torch.tensor([3, -2, 7], dtype=torch.int32),), "torchscript", "diag"
    )


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(("offset", "dim1", "dim2"), [(0, -2, -1), (1, -2, -1), (-2, 0, 2), (1, 2, 0)])
def test_diag_embed(frontend, offset, dim1, dim2):
    torch.manual_seed(0)
    x = torch.randn(2, 3)
    check_rescued(lambda t: torch.diag_embed(t, offset, dim1, dim2), (x,), frontend, "diag_embed")


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("dim", [None, 1, -1, 0])
def test_take_along_dim(frontend, dim):
    torch.manual_seed(0)
    x = torch.randn(3, 5)
    if dim is None:
        indices = torch.tensor([[0, 14], [7, 7]])
    else:
        indices = torch.argsort(x, dim=dim)[:2] if dim == 0 else torch.topk(x, 2, dim=dim).indices
    check_rescued(lambda t, i: torch.take_along_dim(t, i, dim), (x, indices), frontend, "take_along_dim")


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_take_along_dim_broadcasts_size_one_axes(frontend):
    torch.manual_seed(0)
    x = torch.randn(4, 5, 1)
    indices = torch.randint(0, 5, (1, 3, 6))
    check_rescued(lambda t, i: torch.take_along_dim(t, i, 1), (x, indices), frontend, "take_along_dim")


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(("dim", "alpha"), [(0, 1), (1, 2.5), (-1, -1)])
def test_index_add_accumulates_repeated_indices(frontend, dim, alpha):
    torch.manual_seed(0)
    base = torch.randn(4, 5)
    index = torch.tensor([0, 2, 0, 3]) if dim == 0 else torch.tensor([4, 4, 1])
    source = torch.randn(4, 5) if dim == 0 else torch.randn(4, 3)
    check_rescued(
        lambda b, s: b.index_add(dim, index, s, alpha=alpha), (base, source), frontend, "index_add", 1e-6
    )


def test_index_add_keeps_ints():
    base = torch.zeros(3, 2, dtype=torch.int32)
    source = torch.tensor([[1, 2], [3, 4], [5, 6]], dtype=torch.int32)
    check_rescued(
        lambda b, s: b.index_add(0, torch.tensor([2, 2, 0]), s), (base, source), "torchscript", "index_add"
    )


WEIGHT = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_with_offsets_and_an_empty_bag(frontend, mode):
    indices = torch.tensor([1, 2, 4, 5, 4, 3, 2, 9])
    offsets = torch.tensor([0, 3, 3, 6])  # bag 1 is empty: zeros, like PyTorch
    fn = lambda i, o: F.embedding_bag(i, WEIGHT, o, mode=mode)  # noqa: E731
    check_rescued(fn, (indices, offsets), frontend, "embedding_bag", 1e-6)


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_2d_padding_idx_and_last_offset(frontend, mode):
    ids = torch.tensor([[1, 0, 4], [0, 0, 0], [9, 9, 2]])  # row 1: padding only, an empty bag
    fn = lambda i: F.embedding_bag(i, WEIGHT, mode=mode, padding_idx=0)  # noqa: E731
    check_rescued(fn, (ids,), frontend, "embedding_bag", 1e-6)
    flat, offsets = torch.tensor([3, 1, 4, 1, 5, 9]), torch.tensor([0, 2, 5])
    fn = lambda i: F.embedding_bag(i, WEIGHT, offsets, mode=mode, include_last_offset=True)  # noqa: E731
    check_rescued(fn, (flat,), frontend, "embedding_bag", 1e-6)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_embedding_bag_per_sample_weights(frontend):
    indices, offsets = torch.tensor([1, 2, 4, 5, 4]), torch.tensor([0, 2])
    psw = torch.tensor([0.5, 2.0, -1.0, 1.0, 3.0])
    fn = lambda i, w: F.embedding_bag(i, WEIGHT, offsets, mode="sum", per_sample_weights=w)  # noqa: E731
    check_rescued(fn, (indices, psw), frontend, "embedding_bag", 1e-6)


def test_embedding_bag_module_in_fp16():
    bag = torch.nn.EmbeddingBag(10, 4, mode="mean").eval()
    indices, offsets = torch.tensor([1, 2, 4, 5, 4]), torch.tensor([0, 2])
    got, expected, _ = run_fn(bag, (indices, offsets), "torchscript", precision="fp16")
    assert_close_elementwise(got[0], expected[0], rtol=2e-3, atol=1e-3)


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("mode", ["sum", "max"])
def test_embedding_bag_declares_one_row_per_bag(frontend, mode):
    # the bags came out right but were declared (1, D): stacking them with a (bags, D) tensor failed to convert
    # (DLRM's interaction of the dense features with the bags)
    indices, offsets = torch.tensor([1, 2, 4, 5, 4, 3, 2, 9]), torch.tensor([0, 3, 3, 6])
    fn = lambda i, o, x: torch.stack([x, F.embedding_bag(i, WEIGHT, o, mode=mode)], 1)  # noqa: E731
    check_rescued(fn, (indices, offsets, torch.randn(4, 4)), frontend, "embedding_bag", 1e-6)


KEEP = torch.tensor([[True, False, True, True], [False, False, True, False], [True, True, False, False]])


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(
    ("shape", "mask"),
    [((2, 3, 4), KEEP), ((3, 1), KEEP)],
    ids=["x wider", "mask wider"],
)
def test_masked_select_by_a_constant_mask(frontend, shape, mask):
    # a bool buffer selecting fixed positions: the output length is known at conversion (was refused as
    # data-dependent, and the model stopped at convert)
    x = torch.arange(float(np.prod(shape))).reshape(shape) - 5
    check_rescued(lambda t: torch.masked_select(t, mask), (x,), frontend, "masked_select")
