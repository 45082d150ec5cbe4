"""``pairwise_distance``, ``bilinear`` (missing in coremltools 9.0) and dilated ``max_pool`` (refused: MIL
``max_pool`` has no dilation) against PyTorch through the interpreter."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.convert.elementwise_helpers import assert_close_elementwise, check_rescued, run_fn

FRONTENDS = ["torchscript", "torch.export"]


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, float("inf"), 0.0])
def test_pairwise_distance(frontend, p):
    torch.manual_seed(0)
    a, b = torch.randn(4, 6), torch.randn(4, 6)
    b[0] = a[0]  # identical rows: the distance is norm(eps), not 0
    check_rescued(lambda x, y: F.pairwise_distance(x, y, p=p), (a, b), frontend, "pairwise_distance", 1e-6)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_pairwise_distance_broadcast_keepdim_and_module(frontend):
    torch.manual_seed(0)
    a, b = torch.randn(2, 3, 5), torch.randn(5)
    check_rescued(
        lambda x, y: F.pairwise_distance(x, y, eps=0.0, keepdim=True),
        (a, b),
        frontend,
        "pairwise_distance",
        1e-6,
    )
    module = torch.nn.PairwiseDistance(p=1.0)
    check_rescued(module, (a, a.flip(1)), frontend, "pairwise_distance", 1e-6)


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("bias", [True, False])
def test_bilinear_module(frontend, bias):
    torch.manual_seed(0)
    layer = torch.nn.Bilinear(5, 3, 4, bias=bias).eval()
    x1, x2 = torch.randn(2, 6, 5), torch.randn(2, 6, 3)
    check_rescued(layer, (x1, x2), frontend, "bilinear", 2e-6, atol=1e-6)


def test_bilinear_in_fp16():
    torch.manual_seed(0)
    layer = torch.nn.Bilinear(8, 8, 4).eval()
    x1, x2 = torch.randn(3, 8), torch.randn(3, 8)
    check_rescued(layer, (x1, x2), "torchscript", "bilinear", 1e-2, precision="fp16", atol=1e-2)


POOLS = {
    "2d_d2_p1": (lambda t: F.max_pool2d(t, 3, stride=1, padding=1, dilation=2), (1, 2, 9, 8)),
    "2d_d3_s2": (lambda t: F.max_pool2d(t, 2, stride=2, padding=1, dilation=(3, 2)), (2, 1, 10, 7)),
    "2d_ceil": (lambda t: F.max_pool2d(t, 3, stride=2, padding=1, dilation=2, ceil_mode=True), (1, 3, 10, 9)),
    "1d_d2": (lambda t: F.max_pool1d(t, 3, stride=2, dilation=2), (2, 3, 11)),
    "3d_d2": (lambda t: F.max_pool3d(t, 2, stride=1, dilation=2, padding=1), (1, 1, 5, 6, 4)),
    "module_no_padding": (torch.nn.MaxPool2d(2, dilation=2), (1, 2, 8, 8)),
}


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("case", sorted(POOLS))
def test_dilated_max_pool(frontend, case):
    fn, shape = POOLS[case]
    torch.manual_seed(0)
    x = torch.randn(*shape) - 5.0  # all negative: a padded -inf or 0 must never win
    check_rescued(fn, (x,), frontend, "max_pool" + case[:2] if case[0].isdigit() else "max_pool2d", 0.0)


def test_undilated_max_pool_stays_with_coremltools():
    got, expected, rescued = run_fn(
        lambda t: F.max_pool2d(t, 3, 2, 1), (torch.randn(1, 2, 9, 9),), "torchscript"
    )
    assert not any(op.startswith("max_pool") for op in rescued)
    assert_close_elementwise(got[0], expected[0], rtol=0)


UNBATCHED = {
    "2d": (lambda t: F.max_pool2d(t, kernel_size=5, stride=1, padding=2), (2, 9, 8)),  # SuperPoint's NMS
    "2d_s2_ceil": (lambda t: F.max_pool2d(t, 3, stride=2, padding=1, ceil_mode=True), (1, 10, 9)),
    "1d": (lambda t: F.max_pool1d(t, 3, stride=2), (4, 11)),
}


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("case", sorted(UNBATCHED))
def test_unbatched_max_pool(frontend, case):
    # a (C, H, W) input, no batch axis: coremltools 9.0 refused it ("input_shape (length 1), kernel_shape
    # (length 2) ... must all be the same length"), SuperPoint's keypoint NMS pools (batch, H, W) scores
    fn, shape = UNBATCHED[case]
    torch.manual_seed(0)
    x = torch.randn(*shape) - 5.0  # all negative: a padded 0 must never win
    check_rescued(fn, (x,), frontend, "max_pool" + case[:2], 0.0)


def test_dilated_max_pool_in_fp16():
    x = torch.randn(1, 2, 9, 8, generator=torch.Generator().manual_seed(0))
    check_rescued(
        lambda t: F.max_pool2d(t, 3, 1, 1, 2), (x,), "torchscript", "max_pool2d", 1e-3, precision="fp16"
    )


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_cosine_similarity_clamps_each_norm(frontend):
    torch.manual_seed(0)
    a, b = torch.randn(4, 6), torch.randn(4, 6)
    a[1] = 1e-10  # a norm below eps: PyTorch clamps it alone (coremltools clamped the product of both)
    b[2] = 0.0
    check_rescued(lambda x, y: F.cosine_similarity(x, y, dim=1), (a, b), frontend, "cosine_similarity", 1e-6)
    check_rescued(
        lambda x, y: F.cosine_similarity(x, y, dim=-1, eps=1e-3), (a, b), frontend, "cosine_similarity", 1e-6
    )


def test_cosine_similarity_of_long_embeddings_in_fp16():
    # |a|^2 |b|^2 = 512 * 512 overflows fp16: coremltools' form gave a cosine of 0 for every row
    torch.manual_seed(0)
    a = torch.randn(3, 512)
    b = a + 0.5 * torch.randn(3, 512)
    got, expected, _ = run_fn(lambda x, y: F.cosine_similarity(x, y, dim=1), (a, b), "torchscript", "fp16")
    assert_close_elementwise(got[0], expected[0], rtol=2e-3)


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("dim", [None, 1, -1])
def test_prod(frontend, dim):
    x = torch.tensor([[1.5, -2.0, 0.5], [3.0, 0.0, -1.0]])
    fn = (lambda t: torch.prod(t)) if dim is None else (lambda t: torch.prod(t, dim, keepdim=dim == 1))
    check_rescued(fn, (x,), frontend, "prod", 1e-7)


def test_prod_of_integers_stays_integer():
    from tests.convert.elementwise_helpers import assert_same_integers

    x = torch.tensor([[2, -3, 4], [1, 5, -1]], dtype=torch.int32)
    got, expected, rescued = run_fn(lambda t: torch.prod(t, 1), (x,), "torchscript")
    assert "prod" in rescued
    assert_same_integers(got[0], expected[0])
