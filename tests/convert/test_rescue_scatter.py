"""``scatter_reduce``, ``index_fill``, ``index_copy`` (coremltools 9.0 has none of them) against PyTorch through
the interpreter, on both frontends, fp32 and fp16."""

from __future__ import annotations

import pytest
import torch

from tests.convert.elementwise_helpers import check_rescued

FRONTENDS = ["torchscript", "torch.export"]
REDUCTIONS = ["sum", "prod", "amax", "amin", "mean"]


def _segments() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    base = torch.randn(4, 5)
    src = torch.randn(4, 6)
    # slot 3 of each row gets nothing (keeps x); slots 0 and 1 get repeated values
    index = torch.tensor([[0, 1, 0, 2, 4, 1], [4, 4, 4, 0, 1, 2], [1, 1, 1, 1, 1, 1], [2, 0, 4, 0, 2, 0]])
    return base, src, index


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_scatter_reduce(frontend, reduce, include_self):
    base, src, index = _segments()
    check_rescued(
        lambda b, s: b.scatter_reduce(1, index, s, reduce, include_self=include_self),
        (base, src),
        frontend,
        "scatter_reduce",
        rtol=1e-6,  # sums and means add in another order than PyTorch's kernel; max / min / prod are exact
    )


@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_scatter_reduce_along_dim_0_with_a_shorter_index(reduce):
    torch.manual_seed(0)
    base, src = torch.randn(3, 4), torch.randn(5, 4)
    index = torch.tensor([[2, 0, 0, 1], [2, 2, 1, 1]])  # 2 of src's 5 rows are read
    check_rescued(
        lambda b, s: b.scatter_reduce(0, index, s, reduce, include_self=False),
        (base, src),
        "torch.export",
        "scatter_reduce",
        rtol=1e-6,
    )


@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_scatter_reduce_keeps_ints(reduce, include_self):
    base = torch.tensor([[7, -3, 2, 9]], dtype=torch.int32)
    src = torch.tensor([[4, -8, 5, 1, 2]], dtype=torch.int32)
    index = torch.tensor([[0, 0, 2, 2, 0]])
    check_rescued(  # an integer mean floors, as in PyTorch
        lambda b, s: b.scatter_reduce(1, index, s, reduce, include_self=include_self),
        (base, src),
        "torchscript",
        "scatter_reduce",
    )


@pytest.mark.parametrize("reduce", ["sum", "amax", "mean"])
def test_scatter_reduce_fp16(reduce):
    base, src, index = _segments()
    check_rescued(
        lambda b, s: b.scatter_reduce(1, index, s, reduce, include_self=False),
        (base, src),
        "torchscript",
        "scatter_reduce",
        rtol=2e-3,  # fp16 inputs and results (eps 9.8e-4); sums of up to 6 values
        precision="fp16",
        atol=2e-3,
    )


def test_scatter_reduce_with_an_index_narrower_than_the_input():
    """Once refused ("does not cover the input"); now a scatter_nd of full coordinates (rescue/writes.py)."""
    base, src = torch.randn(3, 4), torch.randn(3, 4)
    index = torch.tensor([[0, 1], [1, 2], [0, 0]])  # covers 2 of 4 columns, reducing along dim 0
    check_rescued(
        lambda b, s: b.scatter_reduce(0, index, s, "sum"),
        (base, src),
        "torchscript",
        "scatter_reduce",
        rtol=1e-6,
    )


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(
    ("dim", "index", "value"), [(1, [0, 3, -1], -1.5), (0, [2], float("inf")), (-1, [], 7.0)]
)
def test_index_fill(frontend, dim, index, value):
    torch.manual_seed(0)
    x = torch.randn(3, 5)
    positions = torch.tensor(index, dtype=torch.long)
    if not index and frontend == "torch.export":
        pytest.skip("an empty index makes index_fill the identity, which torch.export folds away")
    if value == float("inf") and frontend == "torchscript":
        pytest.skip("coremltools turns every TorchScript scalar inf into 3.4e38 (its _construct_constant)")
    check_rescued(lambda t: t.index_fill(dim, positions, value), (x,), frontend, "index_fill")


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_index_fill_with_a_run_time_index_and_a_tensor_value(frontend):
    torch.manual_seed(0)
    x = torch.randn(2, 4, 3)
    positions = torch.tensor([3, 1])
    value = torch.tensor(0.25)
    check_rescued(lambda t, i: t.index_fill(1, i, value) + 0, (x, positions), frontend, "index_fill")


def test_index_fill_keeps_ints_and_fp16():
    x = torch.tensor([[1, 2, 3], [4, 5, 6]], dtype=torch.int32)
    check_rescued(lambda t: t.index_fill(1, torch.tensor([1]), -9), (x,), "torchscript", "index_fill")
    check_rescued(
        lambda t: t.index_fill(0, torch.tensor([1]), 2.5),
        (torch.randn(3, 4),),
        "torchscript",
        "index_fill",
        rtol=1e-3,  # the kept values round to fp16; the filled ones are exact
        precision="fp16",
    )


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize(("dim", "index"), [(0, [2, 0]), (1, [4, 0, 1]), (-1, [3])])
def test_index_copy(frontend, dim, index):
    torch.manual_seed(0)
    x = torch.randn(3, 5)
    positions = torch.tensor(index)
    source_shape = [3, 5]
    source_shape[dim] = len(index)
    source = torch.randn(*source_shape)
    check_rescued(lambda t, s: t.index_copy(dim, positions, s), (x, source), frontend, "index_copy")


def test_index_copy_keeps_ints_and_fp16():
    x = torch.zeros(3, 2, dtype=torch.int32)
    source = torch.tensor([[1, 2], [3, 4]], dtype=torch.int32)
    check_rescued(
        lambda t, s: t.index_copy(0, torch.tensor([2, 0]), s), (x, source), "torchscript", "index_copy"
    )
    check_rescued(
        lambda t, s: t.index_copy(1, torch.tensor([1]), s),
        (torch.randn(2, 3), torch.randn(2, 1)),
        "torchscript",
        "index_copy",
        rtol=1e-3,  # values round to fp16
        precision="fp16",
    )


def test_scatter_reduce_of_constants_is_folded_with_its_reduction():
    # coremltools folds a MIL scatter_along_axis of constants as a plain write (mode ignored): the translation
    # folds it itself
    index = torch.tensor([[0, 0, 1, 0]])

    def fn(t):
        return t + torch.zeros(1, 3).scatter_reduce(1, index, torch.arange(1.0, 5.0)[None], "sum")

    check_rescued(fn, (torch.randn(1, 3),), "torchscript", "scatter_reduce")


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("reduce", ["mean", "amin"])
def test_scatter_reduce_with_a_run_time_index(frontend, reduce):
    base, src, index = _segments()
    check_rescued(
        lambda b, s, i: b.scatter_reduce(1, i, s, reduce, include_self=False),
        (base, src, index),
        frontend,
        "scatter_reduce",
        rtol=1e-6,
    )


class _MaskTop(torch.nn.Module):
    """Phi-MoE's router step: mask each row's largest score with -inf (index computed from the input)."""

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        top = scores.max(dim=-1, keepdim=True).indices
        return torch.softmax(torch.scatter(scores, -1, top, float("-inf")), dim=-1)


def test_scatter_of_a_scalar_over_a_flexible_length():
    # coremltools 9.0 filled the scalar to the index's shape as a constant: 'Cannot add const (is35400, 1)' once
    # the rows are a RangeDim (an LM's prefill length)
    import numpy as np

    from devicefit import interp
    from devicefit._lazy import coremltools
    from devicefit.convert import rescue_translations

    ct = coremltools()
    scores = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    traced = torch.jit.trace(_MaskTop().eval(), (scores,))
    with rescue_translations():
        mlmodel = ct.convert(
            traced,
            inputs=[ct.TensorType("scores", shape=(ct.RangeDim(1, 16), 4))],
            minimum_deployment_target=ct.target.iOS18,
            compute_precision=ct.precision.FLOAT32,
            skip_model_load=True,
        )
    program = interp.load(mlmodel)
    for rows in (1, 5, 9):
        x = torch.randn(rows, 4, generator=torch.Generator().manual_seed(rows))
        got = next(iter(program.run({"scores": x.numpy()}).values()))
        np.testing.assert_allclose(got, _MaskTop()(x).numpy(), rtol=1e-6, atol=1e-7)


class _GroupMask(torch.nn.Module):
    """GLM-4-MoE's router: a float mask with 1 written at each row's best group (an int scalar into floats)."""

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        best = scores.topk(2, dim=-1).indices
        mask = torch.zeros_like(scores)
        mask.scatter_(1, best, 1)
        return scores * mask


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_scatter_of_an_int_scalar_into_floats(frontend):
    # coremltools 9.0 filled the update in the scalar's dtype: 'updates has dtype int32 whereas data has dtype fp32'
    scores = torch.randn(3, 6, generator=torch.Generator().manual_seed(0))
    check_rescued(lambda s: _GroupMask()(s), (scores,), frontend, "scatter", rtol=0)
