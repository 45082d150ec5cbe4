"""Walk each frontend's graph: every op node with its kind (as coremltools names it), source line and module.

The TorchScript graph is walked after the torch JIT passes coremltools itself runs before op lookup
(inlining, canonicalization, ``chunk`` -> ``prim::ConstantChunk``), so the scan sees the ops coremltools
looks up, not the raw trace.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devicefit.convert.frontends import export_program, trace_module

if TYPE_CHECKING:
    from devicefit.sources import SourceModel

# TorchScript node kinds coremltools' graph passes consume before op lookup.
_TS_CONSUMED = {"prim::GetAttr", "prim::Constant", "prim::Param", "prim::Return"}


@dataclass(frozen=True)
class NodeInfo:
    """One op node: display name (``"aten::histc"``), sanitized kind (``"histc"``), ``file:line``, module path.

    ``output`` is the node's name as coremltools' frontend names it (the TorchScript value's debug name, the fx
    node's name): how a conversion failure is matched back to the node it stopped at.
    """

    op: str
    kind: str
    location: str
    module_path: str
    output: str = ""


def sanitize(kind: str) -> str:
    """An op kind as coremltools' registry names it (lower case, no ``aten::`` / ``.default`` / in-place ``_``)."""
    from coremltools.converters.mil.frontend.torch.utils import sanitize_op_kind

    return str(sanitize_op_kind(kind))


def torchscript_nodes(source: SourceModel) -> tuple[Any, list[NodeInfo]]:
    """The traced module and its op nodes (after coremltools' JIT passes)."""
    from coremltools.converters.mil.frontend.torch.torchscript_utils import _expand_and_optimize_ir

    traced = trace_module(source)
    # the passes inline the module's graph in place (idempotent: coremltools runs them again on convert)
    graph = _expand_and_optimize_ir(traced)[0]
    return traced, list(_walk_ts_block(graph))


def export_nodes(source: SourceModel) -> tuple[Any, list[NodeInfo]]:
    """The decomposed ExportedProgram and its ``call_function`` nodes."""
    program = export_program(source)
    nodes = []
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        try:
            name = node.target.name()
        except Exception:
            name = getattr(node.target, "__name__", str(node.target))
        stack = node.meta.get("nn_module_stack") or {}
        path = list(stack.values())[-1][0] if stack else ""
        location = _fx_location(node.meta.get("stack_trace") or "")
        nodes.append(NodeInfo(name, sanitize(name), location, _clean_path(path), node.name))
    return program, nodes


WALKERS: dict[str, Callable[[SourceModel], tuple[Any, list[NodeInfo]]]] = {
    "torchscript": torchscript_nodes,
    "torch.export": export_nodes,
}


def _walk_ts_block(block: Any) -> Iterator[NodeInfo]:
    for node in block.nodes():
        kind = node.kind()
        if kind not in _TS_CONSUMED:
            outputs = list(node.outputs())
            output = outputs[0].debugName() if outputs else ""
            yield NodeInfo(
                kind, sanitize(kind), _ts_location(node), _ts_module_path(node.scopeName()), output
            )
        for inner in node.blocks():
            yield from _walk_ts_block(inner)


# --------------------------------------------------------------------------- locations
_TS_FRAME = re.compile(r"^(.*?)\((\d+)\): ")
_FX_FRAME = re.compile(r'File "([^"]+)", line (\d+)')


def _library_dirs() -> tuple[str, ...]:
    import torch

    import devicefit

    return (str(Path(torch.__file__).parent), str(Path(devicefit.__file__).parent))


def _first_user_frame(frames: list[tuple[str, str]]) -> str:
    """``file.py:line`` of the innermost frame outside torch and devicefit (else the innermost frame)."""
    skip = _library_dirs()
    for path, line in frames:
        if not path.startswith(skip):
            return f"{Path(path).name}:{line}"
    return f"{Path(frames[0][0]).name}:{frames[0][1]}" if frames else ""


def _ts_location(node: Any) -> str:
    try:
        text = node.sourceRange()
    except Exception:
        return ""
    frames = [(m.group(1), m.group(2)) for m in map(_TS_FRAME.match, text.splitlines()) if m]
    return _first_user_frame(frames)


def _fx_location(stack_trace: str) -> str:
    frames = _FX_FRAME.findall(stack_trace)
    return _first_user_frame(list(reversed(frames)))


def _ts_module_path(scope: str) -> str:
    return _clean_path(scope.split("/")[-1].replace("__module.", "")) if scope else ""


def _clean_path(path: str) -> str:
    path = re.sub(r"L\['self'\]\.?|L__self__\.?", "", path)
    path = re.sub(r"\._modules\['([^']+)'\]", r".\1", path)
    path = path.strip(".")
    # the FlatModule wrapper adds an "inner" level
    if path == "inner":
        return ""
    return path.removeprefix("inner.")
