"""The scatter chart of the compress page (size vs accuracy per candidate, the Pareto front, the budget line).

Drawn in the shared frame of :mod:`devicefit.report.charts` (same axes, legend and CSS classes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from devicefit.report.charts import (
    CHAR_W,
    LegendItem,
    W,
    _Frame,
    _legend,
    _open,
    _x_axis,
    _y_axis,
    fmt,
    nice_ticks,
)


@dataclass
class Point:
    """One scatter point: position, whether it passes, a tooltip, and whether it is the chosen one."""

    x: float
    y: float
    passed: bool
    tip: str
    chosen: bool = False


def scatter_chart(
    points: Sequence[Point],
    title: str,
    xlabel: str,
    ylabel: str,
    front: Sequence[tuple[float, float]] = (),
    threshold: float | None = None,
    threshold_label: str = "bound",
    x_text: object = fmt,
) -> str:
    """Points coloured pass / fail, an optional front line and a labelled horizontal threshold."""
    pts = [p for p in points if math.isfinite(p.x) and math.isfinite(p.y)]
    if not pts:
        return "<p>no finite points to plot</p>"
    xs = [p.x for p in pts]
    ys = [p.y for p in pts] + ([threshold] if threshold is not None and math.isfinite(threshold) else [])
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1e-9
    frame = _Frame(W, 320, 74, 24, 30, 44)
    legend = [LegendItem("pass", "meets the budget"), LegendItem("fail", "misses it")]
    if front:
        legend.append(LegendItem("line", "Pareto front"))
    if any(p.chosen for p in pts):
        legend.append(LegendItem("chosen", "chosen"))
    if threshold is not None and math.isfinite(threshold):
        legend.append(LegendItem("thr", f"{threshold_label} ({fmt(threshold)})"))
    parts = _open(frame, title, legend)

    def x(v: float) -> float:
        return frame.left + (v - x0) / (x1 - x0) * frame.pw

    def y(v: float) -> float:
        return frame.top + frame.ph * (1 - (v - y0) / (y1 - y0))

    parts += _y_axis(frame, nice_ticks(y0, y1, 5), y, ylabel)
    parts += _x_axis(frame, nice_ticks(x0, x1, max(int(frame.pw / (CHAR_W * 10)), 2)), x, xlabel, x_text)
    if threshold is not None and math.isfinite(threshold):
        ty = y(threshold)
        parts.append(
            f'<line x1="{frame.left}" x2="{W - frame.right}" y1="{ty:.1f}" y2="{ty:.1f}" class="thr"/>'
        )
        parts.append(
            f'<text x="{W - frame.right - 4}" y="{ty - 4:.1f}" text-anchor="end" class="tl">'
            f"{escape(threshold_label)} {fmt(threshold)}</text>"
        )
    if front:
        parts.append(f'<polyline points="{" ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in front)}" class="l"/>')
    for p in pts:
        cls = "ok" if p.passed else "no"
        parts.append(
            f'<circle cx="{x(p.x):.1f}" cy="{y(p.y):.1f}" r="{6 if p.chosen else 3.5}" class="{cls}">'
            f"<title>{escape(p.tip)}</title></circle>"
        )
        if p.chosen:
            parts.append(f'<circle cx="{x(p.x):.1f}" cy="{y(p.y):.1f}" r="9" class="m"/>')
    parts += _legend(frame, legend)
    parts.append("</svg>")
    return "".join(parts)
