"""One-pass op-support scan: every op coremltools cannot translate, with its source line and module path.

coremltools stops at the first op it has no translation for. Here the TorchScript graph (``torch.jit.trace``)
and the torch.export graph are walked in full, each node's kind normalized the way coremltools' torch
frontend does (``sanitize_op_kind``: lower case, no ``aten::`` / ``.default`` / in-place ``_``) and looked up
in its op registry, so a user sees all the work at once. ``scan`` then tries ``ct.convert`` with each
frontend to say which one actually converts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devicefit.convert.rescue import is_rescue, rescue_translations

if TYPE_CHECKING:
    from devicefit.sources import SourceModel

FRONTENDS = ("torchscript", "torch.export")
# TorchScript node kinds coremltools' graph passes consume before op lookup.
_TS_CONSUMED = {"prim::GetAttr", "prim::Constant", "prim::Param", "prim::Return"}
# What to do about an op coremltools lacks, by op; the default says how to add a translation.
HINTS = {
    "new_ones": "devicefit's rescue translation handles it (devicefit.convert.rescue_translations)",
    "histc": "compute the histogram outside the model, or replace it with bucketize-free comparisons",
    "erfinv": "replace with a polynomial approximation, or move it out of the model",
    "logaddexp": "rewrite as torch.maximum(a, b) + torch.log1p(torch.exp(-torch.abs(a - b)))",
    "special_i0": "replace with a series approximation, or move it out of the model",
    "i0": "replace with a series approximation, or move it out of the model",
    "linalg_inv": "precompute the inverse if the matrix is constant, or solve outside the model",
    "_native_multi_head_attention": "devicefit's rescue translation handles it",
    "_transformer_encoder_layer_fwd": "devicefit's rescue translation handles it",
}
_DEFAULT_HINT = (
    "rewrite it with supported ops, or register a translation with "
    "coremltools.converters.mil.frontend.torch.register_torch_op (see devicefit.convert.rescue)"
)


@dataclass
class UnsupportedOp:
    """An op no coremltools translation exists for.

    Attributes:
        op: torch op name, e.g. ``"aten::histc"``.
        location: ``"file.py:123"`` of the first use in the user's code, ``""`` if unknown.
        module_path: submodule it sits in, e.g. ``"encoder.layer.0.attention"`` (``""`` = top level).
        hint: what to do.
        count: how many nodes use it.
        frontends: the frontends whose graph contains it.
    """

    op: str
    location: str
    module_path: str
    hint: str
    count: int = 1
    frontends: list[str] = field(default_factory=list)

    def describe(self) -> str:
        where = ", ".join(p for p in (self.location, self.module_path) if p)
        times = f" x{self.count}" if self.count > 1 else ""
        return f"{self.op}{times}" + (f" ({where})" if where else "")


@dataclass
class FrontendResult:
    """Whether ``ct.convert`` succeeded through one frontend (``"torchscript"`` / ``"torch.export"``)."""

    name: str
    ok: bool
    error: str | None
    seconds: float


@dataclass
class ScanReport:
    """Everything the scan found.

    Attributes:
        unsupported: every op without a translation (merged over both frontends' graphs).
        frontends: conversion attempts, one per frontend tried.
        rescued: devicefit rescue translations the model needs.
        graph_errors: frontend -> why its graph could not be built (tracing / export failed).
    """

    unsupported: list[UnsupportedOp] = field(default_factory=list)
    frontends: list[FrontendResult] = field(default_factory=list)
    rescued: list[str] = field(default_factory=list)
    graph_errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when some frontend converts (or, before any attempt, when no op is unsupported)."""
        if self.frontends:
            return any(f.ok for f in self.frontends)
        return not self.unsupported and len(self.graph_errors) < len(FRONTENDS)

    @property
    def working_frontends(self) -> list[str]:
        return [f.name for f in self.frontends if f.ok]

    def summary(self) -> str:
        """One line: the unsupported ops, then each frontend's outcome."""
        parts = []
        if self.unsupported:
            parts.append(
                f"{len(self.unsupported)} unsupported op(s): "
                + "; ".join(u.describe() for u in self.unsupported)
            )
        for f in self.frontends:
            parts.append(f"{f.name}: " + ("ok" if f.ok else f"failed ({f.error})"))
        for name, err in self.graph_errors.items():
            if name not in {f.name for f in self.frontends}:
                parts.append(f"{name}: no graph ({err})")
        return " | ".join(parts) or "all ops supported"


def scan(source: SourceModel) -> ScanReport:
    """Find every unsupported op in both frontends' graphs, then try converting with each frontend.

    Args:
        source: a torch source (any kind but ``"coreml"``).

    Returns:
        The ScanReport: all unsupported ops at once, the rescue translations used, and which frontend works.
    """
    from devicefit.convert.core import try_frontend

    with rescue_translations():
        report = static_scan(source)
        for name in FRONTENDS:
            report.frontends.append(try_frontend(source, name, None))
    return report


_WALKERS = {"torchscript": lambda s: _torchscript_nodes(s), "torch.export": lambda s: _export_nodes(s)}


def static_scan(
    source: SourceModel,
    frontends: tuple[str, ...] = ("torchscript", "torch.export"),
    into: ScanReport | None = None,
) -> ScanReport:
    """Walk the frontends' graphs and check ops against coremltools' registry, without converting.

    Args:
        source: the model.
        frontends: which graphs to walk.
        into: a report to extend (a later frontend's findings merge with the earlier ones).
    """
    report = into if into is not None else ScanReport()
    found: dict[str, UnsupportedOp] = {_sanitize(u.op): u for u in report.unsupported}
    rescued: set[str] = set(report.rescued)
    for name in frontends:
        walker = _WALKERS[name]
        try:
            nodes = list(walker(source))
        except Exception as exc:
            report.graph_errors[name] = one_line(exc)
            continue
        with rescue_translations():
            statuses = [_lookup(kind, name) for _, kind, _, _ in nodes]
        counts: dict[str, int] = {}
        for (op, kind, location, module_path), status in zip(nodes, statuses, strict=True):
            if status.startswith("rescue:"):
                rescued.add(status.removeprefix("rescue:"))
            if status != "missing":
                continue
            entry = found.get(kind)
            if entry is None:
                entry = found[kind] = UnsupportedOp(
                    op, location, module_path, HINTS.get(kind, _DEFAULT_HINT), 0
                )
            if name not in entry.frontends:
                entry.frontends.append(name)
            counts[kind] = counts.get(kind, 0) + 1
            entry.count = max(entry.count, counts[kind])  # the same op, seen by both graphs, counts once
    report.unsupported = list(found.values())
    report.rescued = sorted(rescued)
    return report


def _lookup(kind: str, frontend: str) -> str:
    """``"ok"``, ``"rescue:<op>"`` or ``"missing"`` for a sanitized op kind."""
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY

    fn = _TORCH_OPS_REGISTRY.get_func(kind)
    if frontend == "torch.export" and kind not in _TORCH_OPS_REGISTRY.name_to_func_mapping:
        fn = None  # the export path checks the exact name before looking it up
    if fn is None:
        return "missing"
    return f"rescue:{fn.__name__}" if is_rescue(fn) else "ok"


def _sanitize(kind: str) -> str:
    from coremltools.converters.mil.frontend.torch.utils import sanitize_op_kind

    return sanitize_op_kind(kind)


# --------------------------------------------------------------------------- graph walkers
NodeInfo = tuple[str, str, str, str]  # (display op, sanitized kind, location, module path)


# The scan's trace / export of a source, handed once to the conversion that follows (convert() scans first,
# then converts): tracing and exporting are a large share of a small model's conversion time. Handed over
# at most once because coremltools may rewrite a graph in place while converting it.
_HANDOFF_ATTR = "_devicefit_scan_graphs"


def trace_module(source: SourceModel) -> Any:
    """The source traced with TorchScript (no_grad, no trace check)."""
    import torch

    with torch.no_grad():
        return torch.jit.trace(source.traceable(), source.example_tensors(), check_trace=False, strict=False)


def take_scan_graph(source: SourceModel, frontend: str) -> Any | None:
    """The graph the last scan built for ``frontend`` (``None`` if none); removes it from the source."""
    graphs = getattr(source, _HANDOFF_ATTR, None)
    return graphs.pop(frontend, None) if graphs else None


def _hand_over(source: SourceModel, frontend: str, graph: Any) -> None:
    graphs = getattr(source, _HANDOFF_ATTR, None)
    if graphs is None:
        graphs = {}
        object.__setattr__(source, _HANDOFF_ATTR, graphs)
    graphs[frontend] = graph


def _torchscript_nodes(source: SourceModel) -> Iterator[NodeInfo]:
    traced = trace_module(source)
    nodes = list(_walk_ts_block(traced.inlined_graph))
    _hand_over(source, "torchscript", traced)
    yield from nodes


def _walk_ts_block(block: Any) -> Iterator[NodeInfo]:
    for node in block.nodes():
        kind = node.kind()
        if kind not in _TS_CONSUMED:
            yield kind, _sanitize(kind), _ts_location(node), _ts_module_path(node.scopeName())
        for inner in node.blocks():
            yield from _walk_ts_block(inner)


def export_program(source: SourceModel) -> Any:
    """The source as an ATen-dialect ExportedProgram (decomposed as coremltools expects)."""
    import torch

    if source.exported is not None:
        program = source.exported
    else:
        with torch.no_grad():
            program = torch.export.export(source.traceable(), source.example_tensors(), strict=False)
    return program.run_decompositions({})


def _export_nodes(source: SourceModel) -> Iterator[NodeInfo]:
    program = export_program(source)
    _hand_over(source, "torch.export", program)
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        try:
            name = node.target.name()
        except Exception:
            name = getattr(node.target, "__name__", str(node.target))
        stack = node.meta.get("nn_module_stack") or {}
        path = list(stack.values())[-1][0] if stack else ""
        yield name, _sanitize(name), _fx_location(node.meta.get("stack_trace") or ""), _clean_path(path)


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


def one_line(exc: BaseException, limit: int = 240) -> str:
    """An exception as one short line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = f"{type(exc).__name__}: {text}"
    return text[:limit] + ("..." if len(text) > limit else "")
