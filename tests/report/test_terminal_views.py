"""The small commands' terminal tables (report/terminal_views.py), rendered from plain result objects."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from rich.console import Console

from devicefit.report import terminal_views


def _text(*renderables: Any) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    for r in renderables:
        console.print(r)
    return console.export_text()


def test_cache_table_shows_each_entry() -> None:
    entry = SimpleNamespace(
        key="0123456789abcdef-rest",
        engine="coreml",
        options={"units": "all"},
        size_bytes=2_500_000,
        last_used=0.0,
    )
    out = _text(terminal_views.cache_table(Path("/c"), [entry], 2_500_000, 1_000_000_000))
    assert "/c · 1 entries · 2.5 of 1000 MB" in out
    assert "0123456789abcdef " in out and "-rest" not in out  # the key is shortened to 16 characters
    assert '{"units": "all"}' in out and "2.50 MB" in out


def test_run_outputs_table_summarises_arrays_and_names_other_values() -> None:
    outputs = {"y": np.array([1.0, np.nan, 3.0], dtype=np.float32), "tokens": [1, 2]}
    out = _text(terminal_views.run_outputs_table("m · function main · fp32", ["y", "tokens"], outputs))
    row = next(line for line in out.splitlines() if line.startswith("│ y"))
    cells = [c.strip() for c in row.split("│")[1:-1]]
    # dtype, shape, min, max, mean of the finite values, one non-finite
    assert cells == ["y", "float32", "3", "1", "3", "2", "1"]
    assert "list" in out


def test_merge_renderables_report_the_saving() -> None:
    result = SimpleNamespace(
        output=Path("m.mlpackage"),
        default_function="f",
        input_weight_bytes={"f": 300, "g": 100},
        merged_weight_bytes=300,
        saved_bytes=100,
    )
    out = _text(*terminal_views.merge_renderables(result, [Path("a.mlpackage"), Path("b.mlpackage")]))
    assert "a.mlpackage" in out and "b.mlpackage" in out and "merged" in out
    assert "shared weights saved 100 bytes (25% of the inputs' weights)" in out
