"""Trace-safe gathers and scatters: the same values as the reference kernels, and aten refuses what they refuse.

The reference kernels check indices by reading them into Python, which a trace would freeze, so the compiled
path ran every model with a data-dependent ``gather_along_axis``, ``scatter_along_axis``, ``gather_nd`` or
``scatter_nd`` on the interpreter (the outside sweep: a GNN's ``scatter_add`` at 3.3x eager, NaN guards'
``index_put`` at 4.6x, XLM-R's token-type gather).
"""

from __future__ import annotations

import pytest
import torch

from devicefit import interp
from devicefit.interp import lowerings
from devicefit.interp.ops import indexing

WRAPS = [True, False]


def _pairs():  # (reference, variant, negative indices allowed)
    return [
        (indexing.gather_along_axis, lowerings.gather_along_axis, True),
        (indexing.gather_along_axis_ios17, lowerings.gather_along_axis_ios17, False),
        (indexing.scatter_along_axis, lowerings.scatter_along_axis, True),
        (indexing.scatter_along_axis_ios17, lowerings.scatter_along_axis_ios17, False),
        (indexing.scatter, lowerings.scatter, True),
        (indexing.scatter_ios17, lowerings.scatter_ios17, False),
        (indexing.gather_nd, lowerings.gather_nd, True),
        (indexing.gather_nd_ios17, lowerings.gather_nd_ios17, False),
        (indexing.scatter_nd, lowerings.scatter_nd, True),
        (indexing.scatter_nd_ios17, lowerings.scatter_nd_ios17, False),
    ]


def test_every_variant_is_the_one_trace_safe_returns():
    for reference, variant, _ in _pairs():
        assert lowerings.trace_safe(reference) is variant


@pytest.mark.parametrize("mode", ["update", "add", "max", "mul"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_along_axis_matches_the_reference(axis, mode):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, 6, generator=g)
    size = x.shape[axis]
    shape = list(x.shape)
    shape[axis] = 3
    idx = torch.randint(0, size, shape, generator=g, dtype=torch.int32)
    neg = idx - size  # the same positions, counted from the end
    upd = torch.randn(shape, generator=g)
    assert torch.equal(lowerings.gather_along_axis(x, idx, axis), indexing.gather_along_axis(x, idx, axis))
    assert torch.equal(lowerings.gather_along_axis(x, neg, axis), indexing.gather_along_axis(x, idx, axis))
    rows = torch.tensor([size - 1, 0], dtype=torch.int32)
    whole = torch.randn([2 if a == (axis % 3) else n for a, n in enumerate(x.shape)], generator=g)
    want = indexing.scatter(x, rows, whole, axis, mode)
    assert torch.equal(lowerings.scatter(x, rows, whole, axis, mode), want)
    assert torch.equal(lowerings.scatter(x, rows - size, whole, axis, mode), want)
    got = lowerings.scatter_along_axis(x, idx, upd, axis, mode)
    assert torch.equal(got, indexing.scatter_along_axis(x, idx, upd, axis, mode))
    assert torch.equal(lowerings.scatter_along_axis(x, neg, upd, axis, mode), got)


@pytest.mark.parametrize("batch_dims", [0, 1])
def test_nd_matches_the_reference(batch_dims):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, 5, 2, generator=g)
    depth = 2
    inner = x.shape[batch_dims : batch_dims + depth]
    cols = [torch.randint(0, d, (3, 7, 1), generator=g) for d in inner]
    idx = torch.cat(cols, -1)
    if batch_dims == 0:
        idx = idx[0]
    assert torch.equal(lowerings.gather_nd(x, idx, batch_dims), indexing.gather_nd(x, idx, batch_dims))
    neg = idx - torch.tensor(list(inner))
    assert torch.equal(lowerings.gather_nd(x, neg, batch_dims), indexing.gather_nd(x, idx, batch_dims))
    if batch_dims == 0:
        upd = torch.randn(*idx.shape[:-1], *x.shape[depth:], generator=g)
        for mode in ("update", "add", "min"):
            want = indexing.scatter_nd(x, idx, upd, mode)
            assert torch.equal(lowerings.scatter_nd(x, idx, upd, mode), want)
            assert torch.equal(lowerings.scatter_nd(x, neg, upd, mode), want)


def test_what_the_reference_refuses_aten_refuses():
    x = torch.randn(4, 3)
    for bad in (4, -5):  # out of range either way
        idx = torch.tensor([[bad, 0, 1]])
        with pytest.raises(interp.InputError):
            indexing.gather_along_axis(x, idx, 0)
        with pytest.raises((IndexError, RuntimeError)):
            lowerings.gather_along_axis(x, idx, 0)
        with pytest.raises((IndexError, RuntimeError)):
            lowerings.scatter_along_axis(x, idx, torch.ones(1, 3), 0)
    # from iOS17 a negative index is out of bounds too
    idx = torch.tensor([[-1, 0, 1]])
    with pytest.raises(interp.InputError):
        indexing.gather_along_axis_ios17(x, idx, 0)
    with pytest.raises((IndexError, RuntimeError)):
        lowerings.gather_along_axis_ios17(x, idx, 0)
    # nd: one bad coordinate of a tuple, including one that would land in the next batch's block
    y = torch.randn(2, 3, 4)
    for tup in ([0, 4], [3, 0], [-4, 0]):  # inner dims (3, 4)
        idx = torch.tensor([[tup]] * 2)
        with pytest.raises(interp.InputError):
            indexing.gather_nd(y, idx, 1)
        with pytest.raises((IndexError, RuntimeError)):
            lowerings.gather_nd(y, idx, 1)
    with pytest.raises((IndexError, RuntimeError)):
        lowerings.scatter_nd(torch.zeros(3, 4), torch.tensor([[3, 0]]), torch.ones(1))
    with pytest.raises((IndexError, RuntimeError)):
        lowerings.scatter_nd_ios17(torch.zeros(3, 4), torch.tensor([[-1, 0]]), torch.ones(1))


class _Gnn(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.msg = torch.nn.Linear(8, 8)

    def forward(self, x: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        src, dst = edges[0], edges[1]
        m = self.msg(x.index_select(0, src))
        agg = torch.zeros_like(x).scatter_add(0, dst.unsqueeze(1).expand(-1, 8), m)
        return torch.relu(agg + x)


def test_a_message_passing_model_compiles_and_equals_the_interpreter():
    from tests.helpers import convert

    torch.manual_seed(0)
    x = torch.randn(10, 8)
    edges = torch.randint(0, 10, (2, 30), dtype=torch.int32)
    prog = interp.load(convert(_Gnn().eval(), (x, edges), target="iOS17", input_names=["x", "edges"]))
    compiled = interp.compile_program(prog, "fp32")
    feeds = {"x": x.numpy(), "edges": edges.numpy()}
    assert "scatter_along_axis" in prog.op_counts
    compiled.run(feeds)
    compiled.run(feeds)
    assert not compiled.fallbacks, [f.describe() for f in compiled.fallbacks]
    assert compiled.specializations and compiled.specializations[0].graph is not None
    other = {"x": x.numpy(), "edges": torch.randint(0, 10, (2, 30), dtype=torch.int32).numpy()}
    for f in (feeds, other):  # a second edge list: nothing of the first was baked in
        got, want = compiled.run(f), prog.run(f)
        for k in want:
            torch.testing.assert_close(
                torch.from_numpy(got[k]), torch.from_numpy(want[k]), rtol=1e-6, atol=1e-6
            )
    bad = {"x": x.numpy(), "edges": (edges.numpy() * 0 + 10)}  # node 10 of 10: the interpreter's own error
    with pytest.raises(interp.InputError, match="out of range"):
        compiled.run(bad)
