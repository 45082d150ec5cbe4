"""One-pass op-support scan: every op coremltools cannot translate, with its source line and module path.

coremltools stops at the first op it has no translation for. Here the TorchScript graph (after the same
torch JIT passes coremltools runs) and the torch.export graph are walked in full, each node's kind
normalized the way coremltools' torch frontend does (``sanitize_op_kind``) and looked up in its op registry,
so a user sees all the work at once. The conversion attempts then settle the list (:func:`settle`): an op
is *blocking* only while no frontend converts; an op a frontend stopped at although the registry has it
(e.g. ``linalg_inv`` on a non-constant input) is added with its source line; after a successful
conversion nothing is blocking and the op table's misses move to ``handled``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from devicefit.convert.frontends import FRONTENDS, FrontendResult, attempt
from devicefit.convert.options import ConvertOptions
from devicefit.convert.rescue import RESCUES, is_rescue, recorded_uses, rescue_translations
from devicefit.convert.walk import WALKERS, NodeInfo, sanitize
from devicefit.errors import first_line

if TYPE_CHECKING:
    from devicefit.sources import SourceModel

__all__ = ["FRONTENDS", "FrontendResult", "ScanReport", "UnsupportedOp", "scan", "settle", "static_scan"]

# What to do about an op coremltools lacks, by op; the default says how to add a translation.
HINTS = {
    "linalg_inv": (
        "devicefit inverts a matrix computed at run time up to 32x32 (an unrolled LU); precompute the inverse if "
        "the matrix is constant, or solve outside the model"
    ),
}
# ops whose output shape depends on the data: no Core ML program can have it, so the hint is the fixed-shape rewrite
HINTS["masked_select"] = (
    "its output length is the count of True mask entries, known only at run time (a Core ML output has a fixed "
    "shape): keep the shape with torch.where(mask, x, fill) and reduce or mask downstream, or pick a fixed number "
    "k of entries with torch.topk(mask.float(), k).indices and a gather"
)
HINTS["unique_consecutive"] = (
    "its output length depends on the data (a Core ML output has a fixed shape): mark the runs with a fixed-size "
    "mask instead, starts = torch.cat([torch.ones_like(x[:1], dtype=torch.bool), x[1:] != x[:-1]]), and use "
    "torch.where / cumsum over it (run ids: starts.cumsum(0) - 1)"
)
HINTS["fractional_max_pool2d"] = (
    "its pooling regions are drawn at random on every call: use F.adaptive_max_pool2d(x, output_size) (or "
    "max_pool2d) in the converted model"
)
_ASSIGN_HINT = (
    "an assignment at an index computed at run time (y[:, i] = v): write it as a masked select, e.g. "
    "y = torch.where(torch.arange(y.shape[1]) == i, v, y), or make the index a constant"
)
HINTS["_internal_op_tensor_inplace_fill_"] = HINTS["_internal_op_tensor_inplace_copy_"] = _ASSIGN_HINT
# transformers' mixture-of-experts layers route tokens to experts at run time (grouped matmuls over per-expert
# token counts): no static program; the LM path computes the experts densely with the model's own router
_MOE_HINT = (
    "transformers' mixture-of-experts dispatch (tokens grouped per expert at run time): for a *ForCausalLM "
    "folder, `devicefit check FOLDER` (text-generation task) converts it with dense expert routing"
)
HINTS["_grouped_mm"] = HINTS["grouped_mm_fallback"] = HINTS["transformers::grouped_mm_fallback"] = _MOE_HINT
# coremltools' internal ops -> the torch op kinds they rewrite (to place them in the user's code)
_REWRITTEN_FROM = {
    "_internal_op_tensor_inplace_fill_": ("fill_", "fill"),
    "_internal_op_tensor_inplace_copy_": ("copy_", "copy"),
}
_DEFAULT_HINT = (
    "rewrite it with supported ops, or register a translation with "
    "coremltools.converters.mil.frontend.torch.register_torch_op (see devicefit.convert.rescue)"
)


@dataclass
class UnsupportedOp:
    """An op coremltools cannot translate.

    Attributes:
        op: torch op name, e.g. ``"aten::histc"``.
        location: ``"file.py:123"`` of the first use in the user's code, ``""`` if unknown.
        module_path: submodule it sits in, e.g. ``"encoder.layer.0.attention"`` (``""`` = top level); every
            submodule using it, comma-separated, when several do.
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
class ScanReport:
    """Everything the scan found.

    Attributes:
        unsupported: ops that block conversion: each listed once, merged over both frontends' graphs.
            Empty once some frontend converts.
        frontends: conversion attempts, one per frontend tried.
        rescued: devicefit rescue translations the model needs.
        handled: ops missing from coremltools' op table that still converted (coremltools' graph passes
            or the export decomposition took care of them); never blocking.
        graph_errors: frontend -> why its graph could not be built (tracing / export failed).
        trace_warnings: torch's TracerWarnings while tracing, ``file.py:line: message``: Python control flow or
            numbers computed from tensors, frozen at the example input (the converted model may not generalize).
    """

    unsupported: list[UnsupportedOp] = field(default_factory=list)
    frontends: list[FrontendResult] = field(default_factory=list)
    rescued: list[str] = field(default_factory=list)
    handled: list[UnsupportedOp] = field(default_factory=list)
    graph_errors: dict[str, str] = field(default_factory=dict)
    # torch's TracerWarnings while tracing ("file.py:line: message"): values the trace froze at the example
    trace_warnings: list[str] = field(default_factory=list)
    # sanitized kind -> where it first appears, per frontend (to place an op a frontend failed on)
    seen: dict[str, dict[str, NodeInfo]] = field(default_factory=dict, repr=False)
    # node name -> node, per frontend: the node a frontend stopped at, when its op kind appears more than once
    nodes: dict[str, dict[str, NodeInfo]] = field(default_factory=dict, repr=False)

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
        The ScanReport: the blocking ops at once (none if a frontend converts), the rescue translations
        used, and which frontend works.
    """
    graphs: dict[str, Any] = {}
    converted: set[str] = set()
    failed: set[str] = set()
    with rescue_translations():
        report = static_scan(source, graphs=graphs)
        for name in FRONTENDS:
            with recorded_uses() as used:
                result = attempt(source, name, ConvertOptions(precision="fp32"), graphs.pop(name, None))[1]
            report.frontends.append(result)
            (converted if result.ok else failed).update(used)
    keep_used_rescues(report, converted if report.ok else failed)
    return settle(report)


def keep_used_rescues(report: ScanReport, used: set[str]) -> None:
    """Narrow ``report.rescued`` (every op kind in the graphs with a devicefit registry entry) to real uses.

    After a conversion: the translations that built a node's ops in it (``used``). After a failure: those, plus
    devicefit's translations of ops coremltools lacks (each builds its node wherever a conversion reaches it);
    an override that handed every node back to coremltools (``to`` for a cast other than bfloat16, ``pad`` in a
    mode other than circular) is not listed, as it was before, as "rescued" on a model that did not convert.
    """
    if report.ok and report.frontends:
        report.rescued = [op for op in report.rescued if op in used]
        return
    report.rescued = [op for op in report.rescued if op in used or not _override(op)]


def _override(op: str) -> bool:
    entry = RESCUES.get(op)
    return entry is None or entry.override


def static_scan(
    source: SourceModel,
    frontends: tuple[str, ...] = FRONTENDS,
    into: ScanReport | None = None,
    graphs: dict[str, Any] | None = None,
) -> ScanReport:
    """Walk the frontends' graphs and check ops against coremltools' registry, without converting.

    Args:
        source: the model.
        frontends: which graphs to walk.
        into: a report to extend (a later frontend's findings merge with the earlier ones).
        graphs: receives each frontend's graph (traced module / ExportedProgram) for the conversion to reuse.
    """
    report = into if into is not None else ScanReport()
    # keyed without the overload: torch.export's upsample_trilinear3d.vec is TorchScript's upsample_trilinear3d
    found: dict[str, UnsupportedOp] = {_base(sanitize(u.op)): u for u in report.unsupported}
    rescued: set[str] = set(report.rescued)
    for name in frontends:
        try:
            graph, nodes = WALKERS[name](source, report.trace_warnings)
        except Exception as exc:
            report.graph_errors[name] = f"{type(exc).__name__}: {first_line(exc, limit=240)}"
            continue
        if graphs is not None:
            graphs[name] = graph
        seen = report.seen.setdefault(name, {})
        report.nodes[name] = {node.output: node for node in nodes if node.output}
        with rescue_translations():
            statuses = [_lookup(node.kind, name) for node in nodes]
        counts: dict[str, int] = {}
        for node, status in zip(nodes, statuses, strict=True):
            seen.setdefault(node.kind, node)
            if status.startswith("rescue:"):
                rescued.add(status.removeprefix("rescue:"))
            if status != "missing":
                continue
            key = _base(node.kind)
            entry = found.get(key)
            if entry is None:
                entry = found[key] = _unsupported(node, 0)
            if name not in entry.frontends:
                entry.frontends.append(name)
            counts[key] = counts.get(key, 0) + 1
            entry.count = max(entry.count, counts[key])  # the same op, seen by both graphs, counts once
            # every module using it, so fixing the first one is not followed by the same error from the next
            paths = entry.module_path.split(", ") if entry.module_path else []
            if node.module_path and node.module_path not in paths:
                entry.module_path = ", ".join([*paths, node.module_path])
    report.unsupported = list(found.values())
    report.rescued = sorted(rescued)
    return report


def settle(report: ScanReport) -> ScanReport:
    """Reconcile the op table's view with what the frontends did (see the module docstring)."""
    if report.ok and report.frontends:
        report.handled.extend(report.unsupported)
        report.unsupported = []
        return report
    # one op, one entry: torch.export spells overloads (upsample_bilinear2d.vec) that TorchScript does not
    listed = {_base(sanitize(u.op)): u for u in report.unsupported}
    for result in report.frontends:
        kind = result.failed_op
        if not result.ok and not kind:
            _place_failed_layer(report, result, listed)
        if result.ok or not kind:
            continue
        same = listed.get(_base(kind))
        if same is not None:
            if result.name not in same.frontends:
                same.frontends.append(result.name)
            continue
        node = _failed_node(report, result)
        # a translation exists but refused this use (a mode, a non-constant input): its reason is
        # the actionable part, unless devicefit knows better for the op
        hint = HINTS.get(kind) or _use_hint(kind, result.error, report)
        entry = (
            UnsupportedOp(node.op, node.location, node.module_path, hint, 1)
            if node
            else UnsupportedOp(kind, "", "", hint)
        )
        entry.frontends.append(result.name)
        report.unsupported.append(entry)
        listed[_base(kind)] = entry
    return report


# coremltools' checks after translation name the Core ML layer: 'Layer "qkv_3_cast_fp16", with type "reshape"'
_LAYER = re.compile(r'(?:Layer|[Oo]p) "([^"]+)"')
_RANK = re.compile(r"rank <= (\d+)")


def _place_failed_layer(report: ScanReport, result: FrontendResult, listed: dict[str, UnsupportedOp]) -> None:
    """A failure after translation (Core ML's rank limit) named by the Core ML layer: placed in the user's code.

    The layer is named after the torch value it computes (``qkv.3`` -> ``qkv_3``, plus ``_cast_fp16`` in an
    fp16 program), so the node is found by that name; the entry then names the op, its source line and module
    instead of an internal Core ML value name.
    """
    found = _LAYER.search(result.error or "")
    if not found:
        return
    layer = re.sub(r"(_cast_fp(16|32))+$", "", found.group(1))
    nodes = report.nodes.get(result.name, {})
    node = next((n for name, n in nodes.items() if name.replace(".", "_") == layer), None)
    if node is None:
        return
    key = _base(node.kind)
    # the same line seen by the other frontend (TorchScript's reshape is torch.export's view)
    same = listed.get(key) or next((u for u in report.unsupported if u.location == node.location), None)
    if same is not None:
        if result.name not in same.frontends:
            same.frontends.append(result.name)
        return
    rank = _RANK.search(result.error or "")
    if rank:
        hint = (
            f"Core ML tensors have at most {rank.group(1)} dimensions and this {node.kind} makes one with more: "
            "merge two axes (e.g. batch and heads, or two window axes) into one before it and split them after"
        )
    else:
        hint = f"this use does not convert: {result.error}"
    entry = UnsupportedOp(node.op, node.location, node.module_path, hint, 1, [result.name])
    report.unsupported.append(entry)
    listed[key] = entry


def _base(kind: str) -> str:
    """An op kind without its overload (``upsample_bilinear2d.vec`` -> ``upsample_bilinear2d``)."""
    return kind.split(".")[0]


# Python errors raised *inside* a coremltools translation: a form of input it does not handle, not a refusal
_CRASHES = ("AttributeError", "TypeError", "KeyError", "IndexError", "AssertionError", "UnboundLocalError")
_RNNS = frozenset({"gru", "rnn_tanh", "rnn_relu", "lstm"})


def _use_hint(kind: str, error: str | None, report: ScanReport) -> str:
    """What to do about an op whose translation exists but failed on this use."""
    if not error:
        return _DEFAULT_HINT
    if kind in _RNNS and any("_pack_padded_sequence" in seen for seen in report.seen.values()):
        return (
            "packed sequences (pack_padded_sequence) do not convert here: run the RNN on the padded batch and "
            "mask the padded steps (take each sequence's last valid step with a gather on the lengths)"
        )
    if error.startswith(_CRASHES):
        return (
            f"coremltools' translation of {kind} failed on this use ({error}): an input form it does not handle "
            "(a list, a packed or non-constant argument); call it with plain tensors and constant arguments"
        )
    return f"this use does not convert: {error}"


def _failed_node(report: ScanReport, result: FrontendResult) -> NodeInfo | None:
    """The node ``result``'s frontend stopped at: by name when known, else the first node of its op kind."""
    kind = result.failed_op
    named = report.nodes.get(result.name, {}).get(result.failed_node or "")
    if named is not None and named.kind == kind:
        return named
    for candidate in (kind or "", *_REWRITTEN_FROM.get(kind or "", ())):
        found = report.seen.get(result.name, {}).get(candidate) or next(
            (seen[candidate] for seen in report.seen.values() if candidate in seen), None
        )
        if found is not None:
            return (
                found
                if candidate == kind
                else NodeInfo(kind or "", kind or "", found.location, found.module_path)
            )
    return None


def _unsupported(node: NodeInfo, count: int) -> UnsupportedOp:
    return UnsupportedOp(node.op, node.location, node.module_path, HINTS.get(node.kind, _DEFAULT_HINT), count)


def _lookup(kind: str, frontend: str) -> str:
    """``"ok"``, ``"rescue:<op>"`` or ``"missing"`` for a sanitized op kind."""
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY

    fn = _TORCH_OPS_REGISTRY.get_func(kind)
    if frontend == "torch.export" and kind not in _TORCH_OPS_REGISTRY.name_to_func_mapping:
        fn = None  # the export path checks the exact name before looking it up
    if fn is None:
        return "missing"
    return f"rescue:{fn.__name__}" if is_rescue(fn) else "ok"
