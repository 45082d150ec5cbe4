"""How each torch frontend's scopes map to (module path, module type, file:line) for :mod:`provenance`.

Split out of :mod:`devicefit.convert.provenance` (which defines the public Origin / Provenance API): this
module only reads coremltools' scopes and the traced / exported graph, and returns plain tuples.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

# (module path, module type, file:line); each may be None when unknown
OriginTuple = tuple[str | None, str | None, str | None]

_PACKAGE = Path(__file__).resolve().parents[1]
# Frames from these places are never the model's code: torch, coremltools, and devicefit's own wrappers and
# calls (the flat-output module, the torch.jit.trace call): every devicefit subpackage; the bundled demo
# model (devicefit/demo.py) is a model's code.
_DEVICEFIT_DIRS = tuple(
    str(p) + os.sep for p in sorted(_PACKAGE.iterdir()) if p.is_dir() and p.name[0] != "_"
)
_INTERNAL_MARKERS = (f"{os.sep}torch{os.sep}", f"{os.sep}coremltools{os.sep}", *_DEVICEFIT_DIRS)
# Frames from these places are library code, never the line a user should edit.
_LIBRARY_MARKERS = ("site-packages", "dist-packages", *_INTERNAL_MARKERS)
# Where the model's code ends: frames past these called the tracer (a script's line, not the model's)
_CALLERS = (f"{os.sep}torch{os.sep}jit{os.sep}_trace.py", *_DEVICEFIT_DIRS)
_FX_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)')
_TS_FRAME = re.compile(r"^(?P<file>.+?)\((?P<line>\d+)\): (?P<func>\S+)$")


# --- TorchScript ---------------------------------------------------------------------------------------


def torchscript_origin(
    names: list[str],
    types: list[str],
    lines: dict[tuple[str, str], list[str | None]],
    module: Any,
    seen: dict[tuple[str, str], list[str]],
    tree: Any = None,
    node_paths: dict[str, str] | None = None,
    node_lines: dict[str, str] | None = None,
) -> OriginTuple | None:
    """The origin of one op from its TorchScript scope; ``tree`` is the traced module (its submodule kinds tell
    a ModuleList child from a Sequential child of the same index); ``node_paths`` maps the traced graph's value
    names to their full module paths (:func:`torchscript_node_paths`), ``node_lines`` to their source lines
    (:func:`torchscript_node_lines`)."""
    if types and types[0] == "placeholder":  # casts of graph inputs, not a module's op
        return None
    # the last entry is the graph node itself (its debug name / aten kind), the others are modules
    path = _full_path(".".join(names[:-1]), lines, tree if tree is not None else module)
    known = {p for p, _ in lines}
    if path and path not in known and sum(_fits(path.split("."), p.split(".")) for p in known) > 1:
        # NOTE: only a scope several graph paths fit is settled by the node's name: a scope that fits none (a
        # wrapper's trace scoped by module names alone, which the generation check pairs by suffix) is kept
        path = _named_path(path, names[-1], node_paths or {})
    kind = types[-1] if len(types) == len(names) else ""
    module_type = types[-2] if len(types) >= 2 else _class_name(module)
    key = (path, kind)
    # several nodes of one kind in one module: match them to the traced graph in order of appearance
    order = seen[key]
    if names[-1] not in order:
        order.append(names[-1])
    candidates = lines.get(key) or []
    # NOTE: the node's own line first: matching by order of appearance shifts once the converter folds or drops
    # some of a module's nodes of that kind (a loop's copies), and names the line of another node
    location = (node_lines or {}).get(names[-1])
    if location is None and candidates:
        location = candidates[min(order.index(names[-1]), len(candidates) - 1)]
    if location is None and module is not None:
        location = _call_site(module, path)
    return (path, module_type, location)


def _full_path(path: str, lines: dict[tuple[str, str], list[str | None]], module: Any = None) -> str:
    """``path`` as the traced graph spells it: children of an ``nn.ModuleList`` lose the list's name in the scopes.

    A module held in a list that ``forward`` iterates is scoped ``inner.0.norm`` (the list itself is never
    called); the graph's own scope names have ``inner.blocks.0.norm``. The unique graph path that keeps
    ``path``'s parts in order, with the same first and last part (the shortest such when several do), is the
    one meant.
    """
    known = {p for p, _ in lines}
    if not path or path in known:
        return path
    parts = path.split(".")
    matches = [p for p in known if _fits(parts, p.split("."))]
    if module is not None and len(matches) > 1:
        # only containers that are never called lose their name: ``front.0`` of a called Sequential keeps
        # ``front`` in its scope, so ``inner.0`` is ``inner.blocks.0`` of the iterated list, not ``inner.front.0``
        matches = [m for m in matches if _omits_only_containers(parts, m.split("."), module)] or matches
    if not matches:
        return path
    # NOTE: the scopes leave out only the lists' names: of ``encoder.layer.0.output`` and
    # ``encoder.layer.0.attention.output``, both fitting ``encoder.0.output``, the one with fewest parts is meant
    fewest = min(len(m.split(".")) for m in matches)
    shortest = [m for m in matches if len(m.split(".")) == fewest]
    return shortest[0] if len(shortest) == 1 else path


def _omits_only_containers(parts: list[str], full: list[str], module: Any) -> bool:
    """Every part of ``full`` missing from ``parts`` names an ``nn.ModuleList`` / ``nn.ModuleDict``."""
    rest = list(parts)
    for i, part in enumerate(full):
        if rest and part == rest[0]:
            rest.pop(0)
            continue
        try:
            omitted = module.get_submodule(".".join(full[: i + 1]))
        except AttributeError:
            return False
        # a traced graph's submodules are ScriptModules that keep their class name as ``original_name``
        if getattr(omitted, "original_name", type(omitted).__name__) not in ("ModuleList", "ModuleDict"):
            return False
    return True


def _fits(parts: list[str], full: list[str]) -> bool:
    """``parts`` is ``full`` with some middle parts left out."""
    if len(full) <= len(parts) or full[0] != parts[0] or full[-1] != parts[-1]:
        return False
    rest = iter(full)
    return all(part in rest for part in parts)


def _named_path(path: str, node: str, node_paths: dict[str, str]) -> str:
    """The full path of a scope ``_full_path`` left ambiguous, read off the node's name.

    Several lists iterated together (``zip(self.norms, self.layers)``) leave ``1`` fitting both ``norms.1`` and
    ``layers.1``. An op's node keeps its value name from the traced graph, whose scopes name the module in full;
    a weight's node is named by its full attribute path (``inner.blocks.0.convs1.0.bias``).
    """
    parts = path.split(".")
    full = node_paths.get(node) or (node.rsplit(".", 1)[0] if "." in node else None)
    return full if full is not None and _keeps_order(parts, full.split(".")) else path


def _keeps_order(parts: list[str], full: list[str]) -> bool:
    """``parts`` is ``full`` with some parts (a root-level list's name too) left out, the last one kept."""
    if not parts or not full or full[-1] != parts[-1]:
        return False
    rest = iter(full)
    return all(part in rest for part in parts)


def torchscript_lines(source: Any) -> dict[tuple[str, str], list[str | None]]:
    """(module path, aten kind) -> innermost user frame of each node of a traced graph, in graph order."""
    graph = getattr(source, "inlined_graph", None)
    if graph is None:
        return {}
    out: dict[tuple[str, str], list[str | None]] = defaultdict(list)
    for node in _graph_nodes(graph):
        kind = node.kind()
        if not kind.startswith("aten::"):
            continue
        scope = node.scopeName()
        path = scope.split("/")[-1].removeprefix("__module").lstrip(".") if scope else ""
        # NOTE: kept without a frame too (library code throughout, e.g. a Hugging Face model): the graph's
        # module paths still name ModuleList children in full, and the origin falls back to the call site
        frame = _user_frame(_ts_frames(str(node.sourceRange())))
        # NOTE: None kept in place: torchscript_origin matches a module's nodes of one kind to these by their
        # order in the graph, so a frameless node must still hold its position
        out[(path, kind.split("::", 1)[1])].append(frame)
    return dict(out)


def torchscript_node_paths(source: Any) -> dict[str, str]:
    """Value name -> full module path of the node producing it, in a traced graph (coremltools names its nodes
    by these value names)."""
    graph = getattr(source, "inlined_graph", None)
    if graph is None:
        return {}
    out: dict[str, str] = {}
    for node in _graph_nodes(graph):
        scope = node.scopeName()
        path = scope.split("/")[-1].removeprefix("__module").lstrip(".") if scope else ""
        for value in node.outputs():
            out[value.debugName()] = path
    return out


def torchscript_node_lines(source: Any) -> dict[str, str]:
    """Value name -> innermost user frame of the aten node producing it, in a traced graph (those with a frame)."""
    graph = getattr(source, "inlined_graph", None)
    if graph is None:
        return {}
    out: dict[str, str] = {}
    for node in _graph_nodes(graph):
        if not node.kind().startswith("aten::"):
            continue
        frame = _user_frame(_ts_frames(str(node.sourceRange())))
        if frame is not None:
            for value in node.outputs():
                out[value.debugName()] = frame
    return out


def _graph_nodes(graph: Any) -> Iterator[Any]:
    for node in graph.nodes():
        yield node
        for block in node.blocks():
            yield from _graph_nodes(block)


def _ts_frames(source_range: str) -> list[tuple[str, int]]:
    """Frames of a traced node's source range, innermost first (``file(line): func`` lines)."""
    frames = []
    for line in source_range.splitlines():
        m = _TS_FRAME.match(line.strip())
        if m:
            frames.append((m["file"], int(m["line"])))
    return frames


def _call_site(module: Any, path: str) -> str | None:
    """``file:line`` of the parent's ``forward`` line that calls the submodule at ``path``."""
    import inspect

    parts = path.split(".") if path else []
    try:
        target = module.get_submodule(path) if path else module
    except AttributeError:
        return None
    if parts and _is_library(inspect.getsourcefile(type(target)) or ""):
        try:
            parent = module.get_submodule(".".join(parts[:-1]))
            src, start = inspect.getsourcelines(type(parent).forward)
            file = inspect.getsourcefile(type(parent).forward) or ""
        except (OSError, TypeError, AttributeError):
            return None
        if _is_library(file):  # a stock container (nn.Sequential) calls it: no line of the user's to show
            return None
        for offset, text in enumerate(src):
            if f"self.{parts[-1]}" in text or f"self[{parts[-1]}]" in text:
                return _location(file, start + offset)
        return _location(file, start)
    try:
        _, start = inspect.getsourcelines(type(target).forward)
        return _location(inspect.getsourcefile(type(target).forward) or "", start)
    except (OSError, TypeError):
        return None


# --- torch.export --------------------------------------------------------------------------------------


def export_origin(
    trace: str, modules: dict[str | int, tuple[str, str | None]], handle: int | None = None
) -> OriginTuple:
    frames = [(m["file"], int(m["line"])) for m in _FX_FRAME.finditer(trace)]
    frames.reverse()  # FX stack traces list the outermost frame first
    # the node's own debug handle (see tag_export_nodes) first: repeated blocks share one stack trace
    path, module_type = (
        modules.get(handle, modules.get(trace, (None, None))) if handle else modules.get(trace, (None, None))
    )
    return (path, module_type, _user_frame(frames))


def tag_export_nodes(source: Any) -> None:
    """Give every node of an ExportedProgram a ``debug_handle`` (kept where one exists).

    coremltools copies a node's handle into each op's scopes (``EXIR_DEBUG_HANDLE``); the stack trace alone
    cannot tell the blocks of a ``ModuleList`` apart (every layer runs the same lines), so without it every
    layer's ops were named after layer 0.
    """
    graph_module = getattr(source, "graph_module", None)
    if graph_module is None:
        return
    for i, node in enumerate(graph_module.graph.nodes, start=1):
        node.meta.setdefault("debug_handle", i)


def export_modules(source: Any) -> dict[str | int, tuple[str, str | None]]:
    """FX stack trace (and node debug handle) -> (module path, module type) of the innermost module, from
    ``nn_module_stack``."""
    graph_module = getattr(source, "graph_module", None)
    if graph_module is None:
        return {}
    out: dict[str | int, tuple[str, str | None]] = {}
    top_type: str | None = None
    for node in graph_module.graph.nodes:
        trace = node.meta.get("stack_trace")
        stack = node.meta.get("nn_module_stack")
        handle = node.meta.get("debug_handle")
        if stack and top_type is None:
            top_type = str(next(iter(stack.values()))[1]).rsplit(".", 1)[-1]
        if not stack:  # an op of the top module's own forward
            found: tuple[str, str | None] = ("", None)
        else:
            path, qualified = list(stack.values())[-1]
            found = (_clean_path(str(path)), str(qualified).rsplit(".", 1)[-1])
        if isinstance(handle, int):
            out[handle] = found
        if trace and trace not in out:
            out[trace] = found
    # the top module's type is known only from nodes that have a module stack
    return {key: (path, kind if path else kind or top_type) for key, (path, kind) in out.items()}


def _clean_path(path: str) -> str:
    """``"L['self'].block.conv"`` / ``"L__self___block_conv"`` forms -> ``"block.conv"``."""
    path = re.sub(r"^L\['self'\]\.?", "", path)
    path = re.sub(r"^L__self__\.?", "", path)
    return re.sub(r"\._modules\['([^']+)'\]", r".\1", path).lstrip(".")


def _user_frame(frames: Iterable[tuple[str, int]]) -> str | None:
    """The innermost frame outside library code, as ``file:line``.

    A model whose code is all library code (a Hugging Face model) gets the innermost frame of that library
    (``modeling_vit.py:123``, outside torch / coremltools / devicefit), which is where its op is.
    """
    library = None
    for file, line in frames:
        if any(marker in file for marker in _CALLERS):
            break  # the tracing call and whoever made it: not the model
        if file.startswith("<") or any(marker in file for marker in _INTERNAL_MARKERS):
            continue
        if not _is_library(file):
            return _location(file, line)
        library = library or f"{Path(file).name}:{line}"
    return library


def _is_library(file: str) -> bool:
    return any(marker in file for marker in _LIBRARY_MARKERS)


def _location(file: str, line: int) -> str:
    """``file:line`` with ``file`` relative to the working directory when it lies below it."""
    try:
        rel = os.path.relpath(file)
        file = rel if not rel.startswith("..") else file
    except ValueError:  # another drive on Windows
        pass
    return f"{file}:{line}"


def nn_module(source: Any) -> Any:
    import sys

    torch = sys.modules.get("torch")
    if (
        torch is not None
        and isinstance(source, torch.nn.Module)
        and not isinstance(source, torch.jit.ScriptModule)
    ):
        return source
    return None


def _class_name(obj: Any) -> str | None:
    if obj is None:
        return None
    original = getattr(obj, "original_name", None)  # a ScriptModule's Python class name
    return str(original) if original else type(obj).__name__
