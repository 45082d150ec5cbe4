"""The import rules of docs/architecture.md, checked on the source text (parsed with ``ast``, nothing imported).

1. Imports follow the pipeline: a module imports from its own top-level folder or from folders earlier in
   :data:`PIPELINE`, never later ones. Function-local (lazy) imports and ``TYPE_CHECKING`` imports count too:
   a lazy import still ties the lower layer to the upper one.
2. No import cycle between modules through module-level imports (the ones that run at import time).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "devicefit"

# Stages in pipeline order; a stage may import from itself and from earlier stages. Entries sharing a
# number are one stage (they may import each other).
PIPELINE: dict[str, int] = {
    "sources": 0,
    "demo": 0,  # the bundled demo model: a model source
    "convert": 1,
    "interp": 2,
    "engines": 3,
    "compare": 4,
    "analyze": 5,
    "compress": 6,
    "runtime": 7,
    "profile": 7,
    "check": 8,  # orchestration: may use everything before the report
    "report": 9,
    "cli": 10,
    "__main__": 11,  # `python -m devicefit`: the CLI's entry point
}
# Top-level helpers every stage may use (they import no stage themselves).
HELPERS = {"errors", "io", "dtypes", "_lazy", "_malloc", "_suggest", "data"}


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported module, dotted
    line: int
    module_level: bool  # runs at import time (not in a function, not under TYPE_CHECKING)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _all_modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path, modules: set[str]) -> list[Import]:
    """Every ``devicefit`` import of one module, resolved to the module it loads."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[Import] = []

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        if node.level:
            base = package.split(".")
            base = base[: len(base) - (node.level - 1)]
            mod = ".".join(base + ([node.module] if node.module else []))
        else:
            mod = node.module or ""
        # ``from pkg import sub`` loads the submodule ``pkg.sub`` when there is one
        subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in modules]
        return subs + ([mod] if len(subs) < len(node.names) else [])

    def visit(node: ast.AST, module_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                for t in targets(child):
                    if t == PACKAGE or t.startswith(PACKAGE + "."):
                        out.append(Import(name, t, child.lineno, module_level))
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, False)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    visit(ast.Module(body=[stmt], type_ignores=[]), False)
                for stmt in child.orelse:
                    visit(ast.Module(body=[stmt], type_ignores=[]), module_level)
            else:
                visit(child, module_level)

    visit(tree, True)
    return out


def _stage(module: str) -> str | None:
    """The top-level folder or module of ``devicefit.X...`` (None for the package root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _edges() -> list[Import]:
    modules = _all_modules()
    names = set(modules)
    return [imp for name, path in modules.items() for imp in _imports(name, path, names)]


def test_every_top_level_folder_has_a_place_in_the_pipeline():
    found = {_stage(m) for m in _all_modules()} - {None}
    assert found <= set(PIPELINE) | HELPERS, (
        f"add {sorted(found - set(PIPELINE) - HELPERS)} to PIPELINE or HELPERS"
    )


def _upward(edges: list[Import], modules: set[str] | None = None) -> list[str]:
    bad = []
    for imp in edges:
        if modules is not None and imp.target not in modules:
            # a module that does not exist (moved or renamed): the import fails when that code runs
            bad.append(f"{imp.source}:{imp.line} imports {imp.target}, which does not exist")
            continue
        src, dst = _stage(imp.source), _stage(imp.target)
        if src is None or dst is None or src == dst or dst in HELPERS:
            continue  # the package root (public API) and same-folder imports are free
        if src in HELPERS:
            bad.append(f"{imp.source}:{imp.line} helper imports the {dst} stage ({imp.target})")
        elif PIPELINE[dst] > PIPELINE[src]:
            kind = "" if imp.module_level else " (lazy)"
            bad.append(f"{imp.source}:{imp.line} -> {imp.target}{kind}: {src} may not import the later {dst}")
    return bad


def test_no_upward_imports():
    bad = _upward(_edges(), set(_all_modules()))
    assert not bad, "imports against the pipeline order (docs/architecture.md):\n" + "\n".join(bad)


def _cycles(edges: list[Import]) -> list[list[str]]:
    """Strongly connected components (size > 1, or a self-import) of the module-level import graph."""
    graph: dict[str, set[str]] = {}
    for imp in edges:
        if imp.module_level and imp.source != imp.target:
            graph.setdefault(imp.source, set()).add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan; graphs here are a few hundred nodes
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_no_import_cycles():
    cycles = _cycles(_edges())
    assert not cycles, "module-level import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    ("source", "imports", "expect"),
    [
        ("devicefit.analyze.x", ["devicefit.compress.weights"], "analyze may not import the later compress"),
        ("devicefit.profile.x", ["devicefit.report.devices"], "profile may not import the later report"),
        ("devicefit.convert.x", ["devicefit.sources.load", "devicefit.errors"], None),
    ],
)
def test_the_rule_catches_what_it_should(source: str, imports: list[str], expect: str | None):
    bad = _upward([Import(source, t, 1, False) for t in imports])
    assert (expect in bad[0]) if expect else not bad


def test_the_parser_sees_lazy_type_checking_and_relative_imports(tmp_path):
    code = (
        "from __future__ import annotations\nfrom typing import TYPE_CHECKING\nfrom . import sibling\n"
        "if TYPE_CHECKING:\n    from devicefit.report import page\n"
        "def f():\n    from devicefit.cli import main\n"
    )
    path = tmp_path / "mod.py"
    path.write_text(code)
    modules = {"devicefit.analyze.sibling", "devicefit.report.page"}
    found = {(i.target, i.module_level) for i in _imports("devicefit.analyze.mod", path, modules)}
    assert found == {
        ("devicefit.analyze.sibling", True),
        ("devicefit.report.page", False),
        ("devicefit.cli", False),
    }


def test_the_cycle_finder_finds_a_cycle():
    edges = [
        Import("a", "b", 1, True),
        Import("b", "c", 1, True),
        Import("c", "a", 1, True),
        Import("c", "d", 1, True),
    ]
    assert _cycles(edges) == [["a", "b", "c"]]
    assert _cycles([Import("a", "b", 1, True), Import("b", "a", 1, False)]) == []  # a lazy import breaks it
