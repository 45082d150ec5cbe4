"""fp16 emulation with fewer rounding nodes in a traced graph: redundant roundings dropped, half arithmetic.

The interpreter emulates fp16 by computing each op in float32 and rounding its output to the nearest fp16
value (``to(float16).to(float32)``: two graph nodes per value). Two passes cut those nodes:

* :func:`drop_redundant_rounding` (bit-identical, both builds): rounding a value that is already an fp16 value
  (a rounded value, a view or reshape of one, a constant that fp16 holds exactly) gives it back unchanged.
* :func:`half_arithmetic` (the default build only, not ``exact=True``): an elementwise op in
  :data:`HALF_OPS` whose inputs are all fp16 values and whose output is only rounded runs on the float16
  tensors directly. PyTorch's CPU kernels for float16 compute each element in float32 and round the result
  once, which is what the interpreter does; ``tests/interp/test_compiled_rewrites.py`` checks that claim for
  every op in the list on all 65,536 fp16 inputs (unary) and on 10^6 input pairs with specials (binary), so
  a PyTorch build where it does not hold fails there. The compiled path still checks the graph against the
  interpreter (within ``rewrites.FP16_RTOL``).
"""

from __future__ import annotations

from typing import Any

import torch

# Elementwise ops whose float16 CPU kernel is round_fp16(float32 kernel) (verified in the tests).
HALF_OPS = frozenset(
    {
        "aten::add",
        "aten::sub",
        "aten::mul",
        "aten::div",
        "aten::sigmoid",
        "aten::tanh",
        "aten::relu",
        "aten::neg",
    }
)
# Ops whose output holds only values of their first input (moved, not computed).
_MOVES = frozenset(
    {
        "aten::reshape",
        "aten::view",
        "aten::squeeze",
        "aten::unsqueeze",
        "aten::flatten",
        "aten::permute",
        "aten::transpose",
        "aten::narrow",
        "aten::select",
        "aten::slice",
        "aten::expand",
        "aten::contiguous",
        "aten::clone",
    }
)
_HALF, _FLOAT = 5, 6  # ScalarType codes of aten::to(Tensor, int dtype, ...)


def _is_to(node: Any, dtype: int) -> bool:
    return node.kind() == "aten::to" and node.inputsSize() >= 2 and node.inputsAt(1).toIValue() == dtype


def _is_round(node: Any) -> bool:
    """``to(to(x, float16), float32)``: the interpreter's fp16 rounding."""
    return _is_to(node, _FLOAT) and _is_to(node.inputsAt(0).node(), _HALF)


def _fp16_exact_constant(value: Any) -> bool:
    if value.node().kind() != "prim::Constant":
        return False
    t = value.toIValue()
    if not isinstance(t, torch.Tensor) or t.dtype != torch.float32:
        return False
    back = t.to(torch.float16).to(torch.float32)
    return bool(torch.allclose(back, t, rtol=0.0, atol=0.0, equal_nan=True))


def drop_redundant_rounding(graph: Any) -> int:
    """Bypass fp16 roundings of values that are fp16 values already; returns how many."""
    known: set[Any] = set()  # graph values (float32 tensors) that hold only fp16 values
    dropped = 0
    for node in list(graph.nodes()):
        if _is_round(node):
            source = node.inputsAt(0).node().inputsAt(0)
            if source in known or _fp16_exact_constant(source):
                node.output().replaceAllUsesWith(source)
                dropped += 1
                known.add(source)
            else:
                known.add(node.output())
        elif node.kind() in _MOVES and node.outputsSize() == 1 and node.inputsAt(0) in known:
            known.add(node.output())
        elif node.kind() in ("aten::split_with_sizes", "aten::split", "aten::unbind", "aten::chunk"):
            if node.inputsAt(0) in known:
                known.update(node.outputs())
        elif node.kind() == "prim::ListUnpack":
            if node.inputsAt(0).node().kind() in (
                "aten::split_with_sizes",
                "aten::split",
                "aten::unbind",
                "aten::chunk",
            ):
                if node.inputsAt(0).node().inputsAt(0) in known:
                    known.update(node.outputs())
    return dropped


_SPLITS = frozenset({"aten::split_with_sizes", "aten::split", "aten::unbind", "aten::chunk"})


def _swap(old: Any, new: Any) -> Any:
    """The value map for ``Graph.createClone``: ``old`` -> ``new``, every other input kept."""
    return lambda v: new if v == old else v


def _push_half_through_moves(graph: Any) -> int:
    """``move(to(h, float32))`` -> ``to(move(h), float32)`` for a float16 ``h``: the same values, and the
    float16 version of the moved value becomes available to the next half op."""
    pushed = 0
    for node in list(graph.nodes()):
        kind = node.kind()
        if (kind not in _MOVES and kind not in _SPLITS) or node.inputsSize() == 0:
            continue
        cast = node.inputsAt(0).node()
        if not (_is_to(cast, _FLOAT) and cast.inputsAt(0).type().scalarType() == "Half"):
            continue
        half = cast.inputsAt(0)
        moved = graph.createClone(node, _swap(node.inputsAt(0), half))
        moved.insertBefore(node)
        if kind in _MOVES:
            pairs = [(node.output(), moved.output())]
        else:
            (unpack,) = [u.user for u in node.output().uses()] if len(node.output().uses()) == 1 else [None]
            if unpack is None or unpack.kind() != "prim::ListUnpack":
                moved.destroy()
                continue
            unpacked = graph.createClone(unpack, _swap(node.output(), moved.output()))
            unpacked.insertAfter(moved)
            pairs = list(zip(unpack.outputs(), unpacked.outputs()))
        anchor = moved if kind in _MOVES else unpacked
        for old_out, new_out in pairs:
            new_out.setType(old_out.type().with_dtype(torch.float16))
            back = graph.createClone(cast, _swap(half, new_out))
            back.insertAfter(anchor)
            anchor = back
            back.output().setType(old_out.type())
            old_out.replaceAllUsesWith(back.output())
        pushed += 1
    return pushed


def half_arithmetic(graph: Any) -> int:
    """Run :data:`HALF_OPS` nodes on float16 tensors where that equals rounding their float32 result."""
    _push_half_through_moves(graph)
    torch._C._jit_pass_dce(graph)
    changed = 0
    for node in list(graph.nodes()):
        if node.kind() not in HALF_OPS or node.outputsSize() != 1:
            continue
        out = node.output()
        users = [u.user for u in out.uses()]
        if not users or not all(_is_to(u, _HALF) for u in users):
            continue
        halves = _half_inputs(graph, node)
        if halves is None:
            continue
        for i, value in halves.items():
            node.replaceInput(i, value)
        out.setType(out.type().with_dtype(torch.float16))
        for user in users:  # to(float16) of a float16 value: itself
            user.output().replaceAllUsesWith(out)
        changed += 1
    return changed


def _half_inputs(graph: Any, node: Any) -> dict[int, Any] | None:
    """Float16 versions of the node's tensor inputs (None if one has none); other inputs must be 1 (alpha)."""
    halves: dict[int, Any] = {}
    for i in range(node.inputsSize()):
        value = node.inputsAt(i)
        if not isinstance(value.type(), torch._C.TensorType):
            if i == 0 or value.toIValue() != 1:
                return None  # only add/sub's alpha=1 may be a scalar
            continue
        producer = value.node()
        if _is_to(producer, _FLOAT) and producer.inputsAt(0).type().scalarType() == "Half":
            halves[i] = producer.inputsAt(0)
        elif value.type().scalarType() == "Half":
            continue
        elif _fp16_exact_constant(value):
            with graph.insert_point_guard(node):
                halves[i] = graph.insertConstant(value.toIValue().to(torch.float16))
        else:
            return None
    return halves


__all__ = ["HALF_OPS", "drop_redundant_rounding", "half_arithmetic"]
