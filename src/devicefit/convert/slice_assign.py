"""Slice assignments padded so that coremltools reads each slice on the axis PyTorch meant.

coremltools 9.0 fuses the ``aten::slice`` / ``aten::select`` chain feeding an ``aten::copy_`` / ``aten::fill_``
into one assignment and applies the chain's i-th op to axis i, ignoring the op's ``dim``. PyTorch records only
the non-trivial ops: ``boxes[..., 0::2] *= w`` is a single ``slice(dim=2)``, which coremltools applied to axis 0
(a silently wrong program), and ``grid[..., 0] /= width`` a single ``select(dim=-1)`` (a failed conversion). Here
each such chain gets full slices on the axes it skips, so the i-th op is on axis i; the values are unchanged (a
full slice is the tensor itself).
"""

from __future__ import annotations

from typing import Any

_VIEWS = ("aten::slice", "aten::select")


def pad_assignment_chains(traced: Any) -> int:
    """Rewrite ``traced``'s forward graph in place (inlined first, as coremltools does); returns how many full
    slices were inserted."""
    import torch

    graph = traced.forward.graph
    torch._C._jit_pass_inline(graph)
    inserted = 0
    for kind in ("aten::copy_", "aten::fill_"):
        for node in graph.findAllNodes(kind):
            inserted += _pad_chain(graph, _chain(node))
    return inserted


def _chain(assign: Any) -> list[Any]:
    """The slice / select nodes from the base tensor to what ``assign`` writes into, first to last."""
    chain = []
    value = next(iter(assign.inputs()))
    while value.node().kind() in _VIEWS:
        chain.append(value.node())
        value = next(iter(value.node().inputs()))
    return chain[::-1]


def _pad_chain(graph: Any, chain: list[Any]) -> int:
    import torch

    inserted = 0
    axis = 0  # where coremltools will apply the next op, in the current (viewed) tensor's axes
    for node in chain:
        source, dim_value = list(node.inputs())[:2]
        kind = source.type()
        rank = kind.dim() if isinstance(kind, torch._C.TensorType) else None
        dim = dim_value.toIValue()
        if rank is None or not isinstance(dim, int):
            return inserted  # NOTE: unknown rank or a computed dim: left as coremltools reads it
        dim = dim + rank if dim < 0 else dim
        if dim < axis:
            return inserted  # an earlier axis after a later one: no padding can put it in order
        with graph.insert_point_guard(node):
            for skipped in range(axis, dim):
                args = [source, graph.insertConstant(skipped), graph.insertConstant(None)]
                args += [graph.insertConstant(None), graph.insertConstant(1)]
                full = graph.insertNode(graph.create("aten::slice", args))
                full.output().setType(source.type())
                full.copyMetadata(node)
                source = full.output()
                inserted += 1
        node.replaceInput(0, source)
        axis = dim + (1 if node.kind() == "aten::slice" else 0)
    return inserted
