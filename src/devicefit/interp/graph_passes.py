"""Clean-up passes on a traced TorchScript graph of one input-shape specialisation (bit-identical).

Tracing the interpreter's kernels records their Python bookkeeping as graph nodes: ``x.shape[i]`` becomes
``aten::size`` + ``NumToTensor`` + ``Int``, a constant weight's ``.to(x.dtype)`` becomes an ``aten::to`` per call,
a reshape to the shape a value already has stays a node. On small recurrent graphs (the unrolled GRU loop)
those nodes outnumber the arithmetic 8 to 1. Since a specialisation only ever runs on inputs of the shapes it
was traced with, every shape the trace recorded is a constant; these passes fold them and drop what becomes a
no-op. None of them changes an arithmetic node or its operands' values, so the graph computes the same bits.

    stats = simplify(graph)   # in place; stats.nodes_before / nodes_after
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

# Ops that return their input unchanged (same values, same dtype) when the output shape equals the input's.
_NOOP_WHEN_SAME_SHAPE = frozenset(
    {
        "aten::reshape",
        "aten::view",
        "aten::expand",
        "aten::squeeze",
        "aten::unsqueeze",
        "aten::flatten",
        "aten::to",
        "aten::type_as",
        "aten::detach",
        "aten::contiguous",
    }
)


@dataclass(frozen=True)
class PassStats:
    """What :func:`simplify` did.

    Attributes:
        nodes_before: graph nodes before (constants included).
        nodes_after: graph nodes after.
        shapes_folded: shape queries (``size``, ``numel``, ``dim``) replaced by constants.
        noops_dropped: reshapes, casts and views that returned their input unchanged.
    """

    nodes_before: int
    nodes_after: int
    shapes_folded: int
    noops_dropped: int


def count_nodes(graph: Any, kinds: frozenset[str] | None = None) -> int:
    """Nodes in ``graph`` (only those of ``kinds`` when given); constants and lists included."""
    return sum(1 for n in graph.nodes() if kinds is None or n.kind() in kinds)


def simplify(graph: Any) -> PassStats:
    """Fold the shapes of a fixed-shape traced graph and remove the no-ops that leaves (in place)."""
    before = count_nodes(graph)
    torch._C._jit_pass_inline(graph)
    folded = _fold_shape_queries(graph)
    torch._C._jit_pass_constant_propagation(graph)
    dropped = _drop_noops(graph)
    torch._C._jit_pass_constant_propagation(graph)
    torch._C._jit_pass_cse(graph)
    torch._C._jit_pass_dce(graph)
    torch._C._jit_pass_lint(graph)
    return PassStats(before, count_nodes(graph), folded, dropped)


def _concrete_sizes(value: Any) -> list[int] | None:
    t = value.type()
    if not isinstance(t, torch._C.TensorType):
        return None
    sizes = t.sizes()
    if sizes is None or any(s is None for s in sizes):
        return None
    return list(sizes)


def _fold_shape_queries(graph: Any) -> int:
    """Replace ``aten::size`` / ``numel`` / ``dim`` of a value with recorded sizes by constants."""
    folded = 0
    for node in list(graph.nodes()):
        kind = node.kind()
        if kind not in ("aten::size", "aten::numel", "aten::dim"):
            continue
        sizes = _concrete_sizes(node.inputsAt(0))
        if sizes is None:
            continue
        value: int | list[int]
        if kind == "aten::size" and node.inputsSize() == 2:
            dim = node.inputsAt(1).toIValue()
            if not isinstance(dim, int):
                continue
            value = sizes[dim]
        elif kind == "aten::size":
            value = sizes
        elif kind == "aten::numel":
            value = 1
            for s in sizes:
                value *= s
        else:
            value = len(sizes)
        with graph.insert_point_guard(node):
            constant = graph.insertConstant(value)
        node.output().replaceAllUsesWith(constant)
        folded += 1
    return folded


def _drop_noops(graph: Any) -> int:
    """Bypass view/cast nodes whose output has the input's sizes, dtype and strides.

    NOTE: such a node returns its input or a view of all of it; bypassing it only changes aliasing, and a
    later in-place op on it (the kernels only mutate fresh clones) would see the same storage either way.
    An ``aten::to`` asked to copy is kept.
    """
    dropped = 0
    for node in list(graph.nodes()):
        if node.kind() not in _NOOP_WHEN_SAME_SHAPE or node.outputsSize() != 1:
            continue
        src, out = node.inputsAt(0).type(), node.output().type()
        if not (isinstance(src, torch._C.TensorType) and isinstance(out, torch._C.TensorType)):
            continue
        sizes = _concrete_sizes(node.inputsAt(0))
        if sizes is None or sizes != _concrete_sizes(node.output()):
            continue
        if src.scalarType() is None or src.scalarType() != out.scalarType() or src.strides() != out.strides():
            continue
        if node.kind() == "aten::to" and _asks_copy(node):
            continue
        node.output().replaceAllUsesWith(node.inputsAt(0))
        dropped += 1
    return dropped + _drop_view_round_trips(graph)


_VIEWS = frozenset({"aten::reshape", "aten::view", "aten::squeeze", "aten::unsqueeze", "aten::flatten"})


def _drop_view_round_trips(graph: Any) -> int:
    """Bypass a chain of views that ends with the sizes, dtype and strides it started from.

    ``squeeze(unsqueeze(x, 0), [0])`` is ``x`` (a loop's row written with ``expand_dims`` and read back with
    ``squeeze`` after the row read was forwarded).
    """
    dropped = 0
    for node in list(graph.nodes()):
        if node.kind() not in _VIEWS or node.outputsSize() != 1:
            continue
        out = node.output()
        want = (_concrete_sizes(out), out.type().scalarType(), out.type().strides())
        if want[0] is None or want[1] is None:
            continue
        source = node.inputsAt(0)
        while source.node().kind() in _VIEWS:
            source = source.node().inputsAt(0)
            if not isinstance(source.type(), torch._C.TensorType):
                break
            if (_concrete_sizes(source), source.type().scalarType(), source.type().strides()) == want:
                out.replaceAllUsesWith(source)
                dropped += 1
                break
    return dropped


def _asks_copy(node: Any) -> bool:
    """An ``aten::to`` overload whose ``copy`` argument is true (it must return a new tensor)."""
    schema = node.schema()
    if schema == "(no schema)":
        return True  # unknown overload: keep it
    names = [a.name for a in torch._C.parse_schema(schema).arguments]
    if "copy" not in names:
        return False
    return node.inputsAt(names.index("copy")).toIValue() is not False


__all__ = ["PassStats", "count_nodes", "simplify"]
