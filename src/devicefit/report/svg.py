"""Tiny inline-SVG plots drawn in Python (no JS, no network): a line chart and a horizontal bar chart."""

from __future__ import annotations

import math
from html import escape

W, H = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 30, 40


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if hi <= lo:
        return [lo]
    return [lo + (hi - lo) * i / n for i in range(n + 1)]


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def line_chart(
    ys: list[float],
    title: str,
    ylabel: str,
    labels: list[str] | None = None,
    marker: int | None = None,
    marker_label: str = "",
    threshold: float | None = None,
    log: bool = False,
) -> str:
    """A line chart of ``ys`` against their index (op order), optionally log-scaled.

    Args:
        ys: values in program order.
        labels: per-point tooltip text (op names).
        marker: index to mark with a red dot and ``marker_label``.
        threshold: draw a dashed horizontal line at this value.
        log: plot log10 of the values (values <= 0 are clipped to the smallest positive one).
    """
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" class="chart">']
    parts.append(
        f'<title>{escape(title)}</title><text x="{W / 2}" y="18" text-anchor="middle" class="t">{escape(title)}</text>'
    )
    if not ys:
        parts.append(f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle">no data</text></svg>')
        return "".join(parts)
    # NOTE: inf / NaN (and the JSON sentinel 1e308) would flatten the whole curve: they are drawn pinned
    # to the top edge in red instead, and the scale comes from the finite values.
    off_scale = [not math.isfinite(v) or abs(v) >= 1e300 for v in ys]
    finite = [v for v, off in zip(ys, off_scale) if not off]
    top = max(finite, default=1.0)
    vals = [top if off else v for v, off in zip(ys, off_scale)]
    if log:
        positive = [v for v in vals if v > 0] + ([threshold] if threshold and threshold > 0 else [])
        floor = min(positive) if positive else 1e-12
        vals = [math.log10(max(v, floor)) for v in vals]
        threshold = math.log10(threshold) if threshold and threshold > 0 else None
    lo, hi = (
        min(vals + ([threshold] if threshold is not None else [])),
        max(vals + ([threshold] if threshold is not None else [])),
    )
    if hi == lo:
        hi, lo = hi + 1, lo - (1 if log or lo < 0 else 0)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    n = len(vals)

    def x(i: int) -> float:
        return LEFT + (pw * i / (n - 1) if n > 1 else pw / 2)

    def y(v: float) -> float:
        return TOP + ph * (1 - (v - lo) / (hi - lo))

    for t in _ticks(lo, hi):
        shown = _fmt(10**t) if log else _fmt(t)
        parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y(t):.1f}" y2="{y(t):.1f}" class="g"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y(t) + 4:.1f}" text-anchor="end" class="a">{shown}</text>')
    parts.append(
        f'<text x="14" y="{TOP + ph / 2}" transform="rotate(-90 14 {TOP + ph / 2})" text-anchor="middle" class="a">{escape(ylabel)}</text>'
    )
    parts.append(
        f'<text x="{LEFT + pw / 2}" y="{H - 8}" text-anchor="middle" class="a">op index (program order)</text>'
    )
    if threshold is not None:
        parts.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y(threshold):.1f}" y2="{y(threshold):.1f}" class="thr"/>'
        )
    pts = " ".join(f"{x(i):.1f},{TOP if off_scale[i] else y(v):.1f}" for i, v in enumerate(vals))
    parts.append(f'<polyline points="{pts}" class="l"/>')
    for i, v in enumerate(vals):
        tip = escape(labels[i]) if labels and i < len(labels) else str(i)
        if off_scale[i]:
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{TOP:.1f}" r="3.5" class="inf"><title>{i}: {tip} = inf / NaN</title></circle>'
            )
            continue
        parts.append(
            f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" class="p"><title>{i}: {tip} = {_fmt(ys[i])}</title></circle>'
        )
    if marker is not None and 0 <= marker < n:
        mx, my = x(marker), TOP if off_scale[marker] else y(vals[marker])
        parts.append(f'<circle cx="{mx:.1f}" cy="{my:.1f}" r="6" class="m"/>')
        anchor = "end" if mx > W * 0.7 else "start"
        dx = -9 if anchor == "end" else 9
        parts.append(
            f'<text x="{mx + dx:.1f}" y="{max(my - 8, TOP + 10):.1f}" text-anchor="{anchor}" class="ml">{escape(marker_label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(labels: list[str], values: list[float], title: str, unit: str) -> str:
    """Horizontal bars, one per label, longest value = full width."""
    row = 18
    height = TOP + row * max(len(values), 1) + 20
    left = 220
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height}" role="img" class="chart">']
    parts.append(
        f'<title>{escape(title)}</title><text x="{W / 2}" y="18" text-anchor="middle" class="t">{escape(title)}</text>'
    )
    top = max(values, default=0.0) or 1.0
    for i, (label, v) in enumerate(zip(labels, values)):
        yy = TOP + i * row
        w = (W - left - 90) * v / top
        short = label if len(label) <= 32 else label[:29] + "..."
        parts.append(f'<text x="{left - 6}" y="{yy + 12}" text-anchor="end" class="a">{escape(short)}</text>')
        parts.append(
            f'<rect x="{left}" y="{yy + 2}" width="{w:.1f}" height="{row - 5}" class="b"><title>{escape(label)}: {_fmt(v)} {escape(unit)}</title></rect>'
        )
        parts.append(f'<text x="{left + w + 5:.1f}" y="{yy + 12}" class="a">{_fmt(v)} {escape(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)
