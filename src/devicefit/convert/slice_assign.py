"""Slice assignments padded so that coremltools reads each slice on the axis PyTorch meant.

coremltools 9.0 fuses the ``aten::slice`` / ``aten::select`` chain feeding an ``aten::copy_`` / ``aten::fill_``
into one assignment and applies the chain's i-th op to axis i, ignoring the op's ``dim``. PyTorch records only
the non-trivial ops: ``boxes[..., 0::2] *= w`` is a single ``slice(dim=2)``, which coremltools applied to axis 0
(a silently wrong program), and ``grid[..., 0] /= width`` a single ``select(dim=-1)`` (a failed conversion). Here
each such chain gets full slices on the axes it skips, so the i-th op is on axis i; the values are unchanged (a
full slice is the tensor itself).

Other in-place ops on a view (``y[..., 4:].add_(z)``, ``y.narrow(1, 4, 3).mul_(0.5)``, ``y[:, 0].clamp_(min=0)``)
coremltools translates as their out-of-place op: the result is a new value and the tensor the view belongs to is
left unchanged. Each is followed here by a ``copy_`` of its result into the view (a ``narrow`` in the chain
becomes the equal ``slice``), which coremltools writes back like ``y[..., 4:] += z``.

A write through any other view (``y.transpose(0, 1)[0].mul_(3)``, ``y.view(-1)[:3] = 0``, a ``chunk`` part,
``y.diagonal().add_(eps)``) lands, in coremltools, in that view's own new value: the tensor it aliases stays
unchanged. When that tensor is read afterwards, the TorchScript conversion is refused (:class:`DroppedViewWrite`,
naming the line) so the conversion goes through ``torch.export``, which makes every such write explicit.
"""

from __future__ import annotations

from typing import Any

_VIEWS = ("aten::slice", "aten::select")
# in-place ops that do not write a view back in coremltools: copy_ / fill_ do; shape-changing ones (unsqueeze_,
# transpose_, resize_) are not element updates
_WRITTEN_BACK = ("aten::copy_", "aten::fill_")
_NOT_ELEMENTWISE = ("unsqueeze_", "squeeze_", "transpose_", "t_", "resize_", "set_", "as_strided_", "detach_")


# ops whose output aliases their first input (``prim::ListUnpack`` of a chunk / split / unbind too)
_ALIASING = (
    *_VIEWS, "aten::narrow", "aten::view", "aten::reshape", "aten::transpose", "aten::t", "aten::permute",
    "aten::unsqueeze", "aten::squeeze", "aten::diagonal", "aten::expand", "aten::expand_as", "aten::view_as",
    "aten::unflatten", "aten::flatten", "aten::unfold", "aten::as_strided", "aten::alias", "aten::movedim",
    "aten::swapaxes", "aten::unbind", "aten::chunk", "aten::split", "aten::split_with_sizes",
    "aten::tensor_split", "prim::ListUnpack",
)  # fmt: skip


class DroppedViewWrite(RuntimeError):
    """An in-place write through a view the TorchScript conversion cannot write back into the tensor it aliases."""


def pad_assignment_chains(traced: Any) -> int:
    """Rewrite ``traced``'s forward graph in place (inlined first, as coremltools does); returns how many full
    slices were inserted."""
    import torch

    graph = traced.forward.graph
    torch._C._jit_pass_inline(graph)
    refuse_dropped_view_writes(graph)
    write_back_view_updates(graph)
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


def _in_place_on_view(node: Any) -> bool:
    """An in-place element update coremltools does not write back (not ``copy_`` / ``fill_``) on a view."""
    if not _writes(node) or node.kind() in _WRITTEN_BACK:
        return False
    return _view_of(next(iter(node.inputs()))) is not None


def _view_of(value: Any) -> Any:
    """The slice / select / narrow value ``value`` is (through in-place ops on it), else None."""
    node = value.node()
    while node.kind().startswith("aten::") and node.kind().endswith("_") and node.inputsSize():
        value = next(iter(node.inputs()))  # an in-place op returns its (aliased) first input
        node = value.node()
    return value if node.kind() in (*_VIEWS, "aten::narrow") else None


def _narrow_as_slice(graph: Any, view: Any) -> Any:
    """``narrow(t, dim, start, length)`` as ``slice(t, dim, start, start + length, 1)`` (constant ints only),
    so coremltools fuses it into the assignment; other views unchanged."""
    node = view.node()
    if node.kind() != "aten::narrow":
        return view
    source, dim, start, length = node.inputs()
    values = [v.toIValue() for v in (dim, start, length)]
    if not all(isinstance(v, int) for v in values):
        return view
    with graph.insert_point_guard(node):
        args = [source, dim, start, graph.insertConstant(values[1] + values[2]), graph.insertConstant(1)]
        sliced = graph.insertNode(graph.create("aten::slice", args))
    sliced.output().setType(view.type())
    sliced.copyMetadata(node)
    view.replaceAllUsesWith(sliced.output())
    node.destroy()
    return sliced.output()


def write_back_view_updates(graph: Any) -> int:
    """After each in-place op on a view, a ``copy_`` of its result into that view; returns how many."""
    written = 0
    for node in [n for n in graph.nodes() if _in_place_on_view(n)]:
        view = _narrow_as_slice(graph, _view_of(next(iter(node.inputs()))))
        with graph.insert_point_guard(node):
            blocking = graph.insertConstant(False)
        copy = graph.create("aten::copy_", [view, node.output(), blocking])
        copy.insertAfter(node)
        copy.output().setType(view.type())
        copy.copyMetadata(node)
        written += 1
    return written


def _writes(node: Any) -> bool:
    """An in-place element update (``copy_`` / ``fill_`` included)."""
    kind = node.kind()
    if (
        not kind.startswith("aten::")
        or not kind.endswith("_")
        or kind.endswith("__")
        or node.inputsSize() == 0
    ):
        return False
    return kind.removeprefix("aten::") not in _NOT_ELEMENTWISE


def _aliased(node: Any) -> tuple[Any, list[Any]]:
    """What an in-place ``node`` writes into: (the value coremltools writes back into, the values it aliases
    beyond that, down to the tensor no view op made)."""
    value = next(iter(node.inputs()))
    while _writes(value.node()):
        value = next(iter(value.node().inputs()))
    while value.node().kind() in (*_VIEWS, "aten::narrow"):
        value = next(iter(value.node().inputs()))
    written_back, beyond = value, []
    while value.node().kind() in _ALIASING:
        value = next(iter(value.node().inputs()))
        beyond.append(value)
    return written_back, beyond


def refuse_dropped_view_writes(graph: Any) -> None:
    """Raise :class:`DroppedViewWrite` at the first in-place write through a view that coremltools would drop:
    one whose aliased tensor (beyond slices and selects) is read after the write."""
    from devicefit.convert._provenance_frontends import _ts_frames, _user_frame

    for node in graph.nodes():
        if not _writes(node):
            continue
        _, beyond = _aliased(node)
        if not any(use.user.isAfter(node) for value in beyond for use in value.uses()):
            continue
        views = []
        value = next(iter(node.inputs()))
        while value.node().kind() in _ALIASING or _writes(value.node()):
            if value.node().kind() in _ALIASING:
                views.append(value.node().kind().split("::")[1])
            value = next(iter(value.node().inputs()))
        frame = _user_frame(_ts_frames(str(node.sourceRange())))
        where = f" at {frame}" if frame else ""
        raise DroppedViewWrite(
            f"in-place {node.kind().split('::')[1]}{where} writes through a {' / '.join(dict.fromkeys(views))} "
            "view of a tensor read afterwards, which the TorchScript conversion would drop"
        )
