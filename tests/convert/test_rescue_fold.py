"""``F.fold`` with overlapping patches (coremltools 9.0 refuses stride < kernel_size) against PyTorch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from devicefit.convert.rescue.fold import fold_tables
from tests.convert.elementwise_helpers import check_rescued

FRONTENDS = ["torchscript", "torch.export"]
# (output, kernel, dilation, padding, stride): overlap-add, dilation, padding, a stride that leaves an edge
CASES = [
    ((7, 9), 3, 1, 1, 1),
    ((8, 8), (4, 2), 1, 0, (2, 1)),
    ((9, 10), 3, 2, (1, 0), 2),
    ((11, 6), 2, 1, 0, 3),
]


def _blocks(output, kernel, dilation, padding, stride) -> tuple[int, int]:
    probe = torch.zeros(1, 1, *output)
    return F.unfold(probe, kernel, dilation, padding, stride).shape[1:]


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("case", CASES)
def test_fold_sums_overlapping_patches_exactly(frontend, case):
    output, kernel, dilation, padding, stride = case
    rows, blocks = _blocks(*case)
    torch.manual_seed(0)
    x = torch.randn(2, 3 * rows, blocks)
    check_rescued(lambda t: F.fold(t, output, kernel, dilation, padding, stride), (x,), frontend, "col2im")


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_fold_keeps_infinities(frontend):
    # an inf entry must give inf in the pixels it covers, not NaN everywhere (no products with 0/1 weights)
    x = torch.randn(1, 2 * 9, 36)
    x[0, 4, 7] = float("inf")
    x[0, 13, 20] = -float("inf")
    check_rescued(lambda t: F.fold(t, (6, 6), 3, padding=1), (x,), frontend, "col2im")


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_fold_unbatched_and_fp16(frontend):
    torch.manual_seed(1)
    x = torch.randn(2 * 9, 5 * 5)
    check_rescued(lambda t: F.fold(t, (7, 7), 3, stride=1), (x,), frontend, "col2im")
    batched = torch.randn(1, 4 * 9, 5 * 5)
    check_rescued(
        lambda t: F.fold(t, (7, 7), 3, stride=1),
        (batched,),
        frontend,
        "col2im",
        precision="fp16",
        rtol=3e-3,
        atol=3e-3,
    )


def test_fold_tables_count_each_pixels_patches():
    table = fold_tables((5, 5), (3, 3), (1, 1), (0, 0), (1, 1))
    covering = (table < 9 * 9).sum(axis=0).reshape(5, 5)
    expected = F.fold(torch.ones(1, 9, 9), (5, 5), 3)[0].numpy()
    assert (covering == expected).all()
