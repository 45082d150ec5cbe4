"""The CLI hands results to devicefit.report and prints what it returns: no cli module builds a rich table.

Checked on the source text (``ast``, nothing imported), so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CLI = Path(__file__).resolve().parents[2] / "src" / "devicefit" / "cli"


def _table_uses(source: str) -> list[int]:
    """Lines that import ``rich.table`` (any name from it) or reach ``Table`` through ``rich.table``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "rich.table":
            lines.append(node.lineno)
        elif isinstance(node, ast.Import) and any(a.name == "rich.table" for a in node.names):
            lines.append(node.lineno)
        elif (
            isinstance(node, ast.Attribute)
            and node.attr == "Table"
            and ast.unparse(node.value) == "rich.table"
        ):
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize(
    "source",
    [
        "def f():\n    from rich.table import Table\n    return Table()\n",
        "import rich.table\nt = rich.table.Table()\n",
        "from rich.table import Column\n",
    ],
)
def test_the_check_catches_a_table(source: str) -> None:
    assert _table_uses(source)


def test_the_check_passes_rendering_elsewhere() -> None:
    assert not _table_uses("from rich.console import Console\nfrom devicefit.report import terminal_views\n")


def test_no_cli_module_builds_a_rich_table() -> None:
    modules = sorted(CLI.glob("*.py"))
    assert len(modules) > 5  # the folder was found
    offenders = [f"{p.name}:{line}" for p in modules for line in _table_uses(p.read_text(encoding="utf-8"))]
    assert not offenders, (
        "cli modules build rich tables; move the rendering into devicefit.report (e.g. report/terminal_views.py) "
        f"and print what it returns: {', '.join(offenders)}"
    )
