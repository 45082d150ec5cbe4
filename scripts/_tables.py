"""What scripts/coverage.py and scripts/sweep_check.py share: a cosine, resumable JSON-lines rows, a table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity in float64 (1.0 for two all-zero arrays that are equal, 0.0 against a zero array)."""
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom > 0 else float(np.array_equal(a, b))


def load_rows(path: str | None, key: str) -> dict[str, dict[str, Any]]:
    """Rows measured by an earlier (stopped) run, by ``row[key]``; {} without a file."""
    done: dict[str, dict[str, Any]] = {}
    if path and Path(path).exists():
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                done[entry[key]] = entry
    return done


def append_row(path: str | None, row: dict[str, Any]) -> None:
    """Keep ``row`` as soon as it is measured, so a stopped run resumes after it."""
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


def markdown_table(columns: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]]) -> list[str]:
    """A Markdown table: ``columns`` are (row key, title); ``|`` in a cell becomes ``/``."""
    lines = [
        "| " + " | ".join(title for _, title in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(key, "")).replace("|", "/") for key, _ in columns) + " |")
    return lines
