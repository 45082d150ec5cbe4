"""The search's path through the ladder: upgrades ordered by noise removed per byte, and greedy refinement."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from devicefit.compress.sensitivity import LayerSensitivity

if TYPE_CHECKING:  # search imports this module; the type alone is needed here
    from devicefit.compress.search import Candidate


def upgrade_path(layers: list[LayerSensitivity], order: list[str]) -> list[tuple[str, str]]:
    """(weight, new choice) steps from all-smallest to all-fp16, most noise removed per byte first."""
    at = {s.weight: 0 for s in layers}
    by_name = {s.weight: s for s in layers}
    path: list[tuple[str, str]] = []
    while True:
        best, best_ratio = None, -math.inf
        for w, i in at.items():
            if i + 1 >= len(order):
                continue
            s, a, b = by_name[w], order[i], order[i + 1]
            gain = min(s.noise[a], 1e30) - min(s.noise[b], 1e30)
            cost = max(s.bytes[b] - s.bytes[a], 1)
            if gain / cost > best_ratio:
                best, best_ratio = w, gain / cost
        if best is None:
            return path
        at[best] += 1
        path.append((best, order[at[best]]))


def assignment_at(
    layers: list[LayerSensitivity], order: list[str], path: list[tuple[str, str]], n: int
) -> dict[str, str]:
    out = {s.weight: order[0] for s in layers}
    for w, c in path[:n]:
        out[w] = c
    return out


def refine(current: Candidate, order: list[str], run: Any, limit: int, seen: dict) -> Candidate:
    """Greedy: take the single-weight one-step downgrade that saves the most bytes and still passes."""
    while len(seen) < limit:
        trials = []
        for w, c in current.assignment.items():
            i = order.index(c)
            if i > 0:
                trials.append({**current.assignment, w: order[i - 1]})
        if not trials:
            return current
        better = [c for c in run(trials[: max(1, limit - len(seen))]) if c.passed and c.bytes < current.bytes]
        if not better:
            return current
        current = min(better, key=lambda c: c.bytes)
    return current
