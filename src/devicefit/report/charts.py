"""The one chart module of every devicefit report: inline SVG drawn in Python (no JS, no network).

Every chart shares one frame (title, both axes with ticks and labels, a legend under the plot) and one set of
CSS classes (styled once in :mod:`devicefit.report.page`), so check, compress and profile pages look alike.
Labels that would not fit are shortened with an ellipsis and keep their full text in a tooltip; tick labels
are spaced from their measured width so they never overlap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

W = 760
CHAR_W = 6.6  # average glyph width of the 11 px axis font, to size margins and space ticks
SERIES = ("s0", "s1", "s2", "s3", "s4", "s5")  # CSS classes of successive series


def fmt(v: float) -> str:
    """Tick and value text: 3 significant digits, no exponent for everyday magnitudes."""
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e5:
        return f"{v:.3g}"
    return f"{v:.2g}"


def nice_ticks(lo: float, hi: float, max_ticks: int = 6) -> list[float]:
    """Round tick values (1, 2, 5 x 10^k steps) covering [lo, hi], at most ``max_ticks`` of them."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(max_ticks - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks or [lo]


def index_ticks(n: int, width: float, label_chars: int = 4) -> list[int]:
    """Integer x ticks for ``n`` points over ``width`` px, spaced so their labels cannot overlap."""
    if n <= 1:
        return [0] if n else []
    room = max(int(width / (CHAR_W * (label_chars + 3))), 2)
    ticks = [int(t) for t in nice_ticks(0, n - 1, room) if float(t).is_integer()]
    return ticks or [0, n - 1]


def shorten(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: max(chars - 1, 1)] + "…"


@dataclass
class LegendItem:
    """One legend entry: a CSS class of the mark (``line``, ``dot``, ``thr``, ``marker``...) and its text."""

    mark: str
    text: str


@dataclass
class _Frame:
    width: float
    height: float
    left: float
    right: float
    top: float
    bottom: float

    @property
    def pw(self) -> float:
        return self.width - self.left - self.right

    @property
    def ph(self) -> float:
        return self.height - self.top - self.bottom


def _open(frame: _Frame, title: str, legend: Sequence[LegendItem]) -> list[str]:
    total = frame.height + (22 if legend else 0)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {frame.width:.0f} {total:.0f}" role="img" '
        f'class="chart"><title>{escape(title)}</title>',
        f'<text x="{frame.width / 2:.0f}" y="18" text-anchor="middle" class="t">{escape(title)}</text>',
    ]


def _legend(frame: _Frame, items: Sequence[LegendItem]) -> list[str]:
    """The legend in one row under the plot (never over the data)."""
    out, x, y = [], frame.left, frame.height + 12
    for item in items:
        out.append(_legend_mark(item.mark, x, y))
        out.append(f'<text x="{x + 22:.0f}" y="{y + 4:.0f}" class="a">{escape(item.text)}</text>')
        x += 34 + CHAR_W * len(item.text)
    return out


def _legend_mark(mark: str, x: float, y: float) -> str:
    if mark in ("dot", "inf", "marker", "chosen", "pass", "fail"):
        cls = {"dot": "p", "inf": "inf", "marker": "m", "chosen": "m", "pass": "ok", "fail": "no"}[mark]
        return f'<circle cx="{x + 8:.0f}" cy="{y:.0f}" r="4" class="{cls}"/>'
    if mark == "bar" or mark.startswith("bar-"):
        cls = "b" if mark == "bar" else mark[4:]
        return f'<rect x="{x:.0f}" y="{y - 5:.0f}" width="16" height="10" class="{cls}"/>'
    cls = {"line": "l", "thr": "thr"}.get(mark, mark)
    return f'<line x1="{x:.0f}" x2="{x + 16:.0f}" y1="{y:.0f}" y2="{y:.0f}" class="{cls}"/>'


def _y_axis(frame: _Frame, ticks: Sequence[float], y: object, label: str, text: object = fmt) -> list[str]:
    out = []
    for t in ticks:
        py = y(t)  # type: ignore[operator]
        out.append(
            f'<line x1="{frame.left}" x2="{frame.width - frame.right}" y1="{py:.1f}" y2="{py:.1f}" class="g"/>'
        )
        out.append(
            f'<text x="{frame.left - 6}" y="{py + 4:.1f}" text-anchor="end" class="a">{text(t)}</text>'  # type: ignore[operator]
        )
    mid = frame.top + frame.ph / 2
    out.append(
        f'<text x="14" y="{mid:.0f}" transform="rotate(-90 14 {mid:.0f})" text-anchor="middle" class="a">'
        f"{escape(label)}</text>"
    )
    return out


def _x_axis(frame: _Frame, ticks: Sequence[float], x: object, label: str, text: object = fmt) -> list[str]:
    base = frame.height - frame.bottom
    out = [f'<line x1="{frame.left}" x2="{frame.width - frame.right}" y1="{base}" y2="{base}" class="ax"/>']
    for t in ticks:
        px = x(t)  # type: ignore[operator]
        out.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{base}" y2="{base + 4}" class="ax"/>')
        out.append(f'<text x="{px:.1f}" y="{base + 16}" text-anchor="middle" class="a">{text(t)}</text>')  # type: ignore[operator]
    out.append(
        f'<text x="{frame.left + frame.pw / 2:.0f}" y="{frame.height - 6}" text-anchor="middle" class="a">'
        f"{escape(label)}</text>"
    )
    return out


def line_chart(
    ys: Sequence[float],
    title: str,
    ylabel: str,
    labels: Sequence[str] | None = None,
    marker: int | None = None,
    marker_label: str = "",
    threshold: float | None = None,
    threshold_label: str = "threshold",
    log: bool = False,
    xlabel: str = "op index (program order)",
    series_label: str = "value per op",
) -> str:
    """A line chart of ``ys`` against their index (program order), optionally log-scaled.

    Infinite / NaN values (and the JSON sentinel 1e308) are pinned to the top edge in red so they do not
    flatten the curve; the scale comes from the finite values. The legend explains every mark drawn.

    Args:
        ys: values in program order.
        labels: per-point tooltip text (where each op comes from).
        marker: index to ring, with ``marker_label`` next to it and in the legend.
        threshold: a dashed horizontal line, labelled ``threshold_label`` on the chart and in the legend.
        log: plot on a log10 axis (values <= 0 are clipped to the smallest positive one).
    """
    frame = _Frame(W, 280, 74, 24, 30, 44)
    if not ys:
        return "".join(
            [*_open(frame, title, []), f'<text x="{W / 2}" y="140" text-anchor="middle">no data</text></svg>']
        )
    off = [not math.isfinite(v) or abs(v) >= 1e300 for v in ys]
    finite = [v for v, o in zip(ys, off) if not o]
    vals = [max(finite, default=1.0) if o else v for v, o in zip(ys, off)]
    thr = threshold
    if log:
        positive = [v for v in vals if v > 0] + ([threshold] if threshold and threshold > 0 else [])
        floor = min(positive) if positive else 1e-12
        vals = [math.log10(max(v, floor)) for v in vals]
        thr = math.log10(threshold) if threshold and threshold > 0 else None
    span = vals + ([thr] if thr is not None else [])
    lo, hi = min(span), max(span)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    n = len(vals)

    def x(i: float) -> float:
        return frame.left + (frame.pw * i / (n - 1) if n > 1 else frame.pw / 2)

    def y(v: float) -> float:
        return frame.top + frame.ph * (1 - (v - lo) / (hi - lo))

    legend = [LegendItem("line", series_label)]
    if any(off):
        legend.append(LegendItem("inf", "inf / NaN (drawn at the top edge)"))
    if threshold is not None:
        legend.append(LegendItem("thr", f"{threshold_label} ({fmt(threshold)})"))
    if marker is not None and 0 <= marker < n:
        legend.append(LegendItem("marker", marker_label or "marked op"))
    parts = _open(frame, title, legend)
    if log:
        yt = [float(t) for t in range(math.floor(lo), math.ceil(hi) + 1)]
        if len(yt) > 7:
            yt = yt[:: math.ceil(len(yt) / 7)]
        parts += _y_axis(
            frame, [t for t in yt if lo - 1e-9 <= t <= hi + 1e-9] or [lo], y, ylabel, lambda t: fmt(10**t)
        )
    else:
        parts += _y_axis(frame, nice_ticks(lo, hi), y, ylabel)
    parts += _x_axis(frame, index_ticks(n, frame.pw, len(str(n))), x, xlabel, lambda t: str(int(t)))
    if thr is not None:
        ty = y(thr)
        parts.append(
            f'<line x1="{frame.left}" x2="{W - frame.right}" y1="{ty:.1f}" y2="{ty:.1f}" class="thr"/>'
        )
        parts.append(
            f'<text x="{W - frame.right - 4}" y="{ty - 4:.1f}" text-anchor="end" class="tl">'
            f"{escape(threshold_label)} {fmt(threshold or 0)}</text>"
        )
    pts = " ".join(f"{x(i):.1f},{frame.top if off[i] else y(v):.1f}" for i, v in enumerate(vals))
    parts.append(f'<polyline points="{pts}" class="l"/>')
    for i, v in enumerate(vals):
        tip = escape(labels[i]) if labels and i < len(labels) else str(i)
        if off[i]:
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{frame.top:.1f}" r="3.5" class="inf"><title>{i}: {tip} = inf / NaN'
                "</title></circle>"
            )
        else:
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" class="p"><title>{i}: {tip} = {fmt(ys[i])}'
                "</title></circle>"
            )
    if marker is not None and 0 <= marker < n:
        mx, my = x(marker), frame.top if off[marker] else y(vals[marker])
        parts.append(f'<circle cx="{mx:.1f}" cy="{my:.1f}" r="6" class="m"/>')
        anchor, dx = ("end", -9) if mx > W * 0.6 else ("start", 9)
        room = int((mx - frame.left if anchor == "end" else W - frame.right - mx) / CHAR_W) - 2
        parts.append(
            f'<text x="{mx + dx:.1f}" y="{max(my - 8, frame.top + 10):.1f}" text-anchor="{anchor}" class="ml">'
            f"{escape(shorten(marker_label, max(room, 8)))}</text>"
        )
    parts += _legend(frame, legend)
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(labels: Sequence[str], values: Sequence[float], title: str, unit: str) -> str:
    """Horizontal bars, one per label; the label column is as wide as the labels need (up to half the chart)."""
    row = 20
    longest = max((len(s) for s in labels), default=4)
    left = min(max(80.0, CHAR_W * longest + 12), W / 2)
    chars = int((left - 12) / CHAR_W)
    value_room = CHAR_W * (len(fmt(max(values, default=0))) + len(unit) + 2)
    frame = _Frame(W, 36 + row * max(len(values), 1) + 8, left, value_room + 10, 30, 8)
    parts = _open(frame, title, [])
    top = max(values, default=0.0) or 1.0
    for i, (label, v) in enumerate(zip(labels, values)):
        yy = frame.top + i * row
        w = frame.pw * v / top
        parts.append(
            f'<text x="{left - 6:.0f}" y="{yy + 13}" text-anchor="end" class="a"><title>{escape(label)}</title>'
            f"{escape(shorten(label, chars))}</text>"
        )
        parts.append(
            f'<rect x="{left:.0f}" y="{yy + 3}" width="{max(w, 0.5):.1f}" height="{row - 6}" class="b">'
            f"<title>{escape(label)}: {fmt(v)} {escape(unit)}</title></rect>"
        )
        parts.append(f'<text x="{left + w + 5:.1f}" y="{yy + 13}" class="a">{fmt(v)} {escape(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(samples: Sequence[float], title: str, unit: str = "ms", bins: int = 30) -> str:
    """A distribution with its p50 / p90 / p99 lines (the far tail beyond p99.5 is clipped into the last bin)."""
    import numpy as np

    if not len(samples):
        return ""
    data = np.asarray(samples, dtype=np.float64)
    lo, hi = float(data.min()), float(np.quantile(data, 0.995))
    if hi <= lo:
        hi = lo + max(abs(lo) * 1e-3, 1e-9)
    counts, edges = np.histogram(np.clip(data, lo, hi), bins=bins, range=(lo, hi))
    top = max(int(counts.max()), 1)
    frame = _Frame(W, 260, 64, 24, 30, 44)
    quantiles = [(q, f"q{i}") for i, q in enumerate((0.5, 0.9, 0.99))]
    legend = [
        LegendItem("bar", "samples per bin"),
        *(LegendItem(c, f"p{int(q * 100)}") for q, c in quantiles),
    ]
    parts = _open(frame, title, legend)

    def x(v: float) -> float:
        return frame.left + (v - lo) / (hi - lo) * frame.pw

    def y(c: float) -> float:
        return frame.top + frame.ph * (1 - c / top)

    parts += _y_axis(frame, nice_ticks(0, top, 5), y, "count")
    parts += _x_axis(frame, nice_ticks(lo, hi, max(int(frame.pw / (CHAR_W * 9)), 2)), x, f"latency ({unit})")
    bw = frame.pw / bins
    for i, c in enumerate(counts):
        parts.append(
            f'<rect x="{frame.left + i * bw:.1f}" y="{y(c):.1f}" width="{max(bw - 1, 0.5):.1f}" '
            f'height="{frame.top + frame.ph - y(c):.1f}" class="b"><title>{fmt(edges[i])}–{fmt(edges[i + 1])} '
            f"{escape(unit)}: {c}</title></rect>"
        )
    for q, cls in quantiles:
        px = x(min(float(np.quantile(data, q)), hi))
        parts.append(
            f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{frame.top}" y2="{frame.top + frame.ph}" class="{cls}"/>'
        )
    parts += _legend(frame, legend)
    parts.append("</svg>")
    return "".join(parts)


def series_chart(
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]], title: str, xlabel: str, ylabel: str
) -> str:
    """Several (x, y) lines, one colour each, named in the legend under the plot."""
    series = [(name, pts) for name, pts in series if pts]
    if not series:
        return ""
    xs = [px for _, pts in series for px, _ in pts]
    ys = [py for _, pts in series for _, py in pts]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y1 = max(ys) * 1.1 or 1.0
    frame = _Frame(W, 280, 64, 24, 30, 44)
    legend = [LegendItem(SERIES[i % len(SERIES)], name) for i, (name, _) in enumerate(series)]
    parts = _open(frame, title, legend)

    def x(v: float) -> float:
        return frame.left + (v - x0) / (x1 - x0) * frame.pw

    def y(v: float) -> float:
        return frame.top + frame.ph * (1 - v / y1)

    parts += _y_axis(frame, nice_ticks(0, y1), y, ylabel)
    xticks = nice_ticks(x0, x1, max(int(frame.pw / (CHAR_W * 7)), 2))
    if all(float(v).is_integer() for v in xs):  # counts (requests in flight): whole-number ticks only
        xticks = [t for t in xticks if float(t).is_integer()] or [x0, x1]
    parts += _x_axis(frame, xticks, x, xlabel)
    for i, (name, pts) in enumerate(series):
        cls = SERIES[i % len(SERIES)]
        line = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in pts)
        parts.append(f'<polyline points="{line}" class="{cls}"/>')
        for a, b in pts:
            parts.append(
                f'<circle cx="{x(a):.1f}" cy="{y(b):.1f}" r="3" class="{cls}d"><title>{escape(name)}: '
                f"{fmt(a)} -> {fmt(b)}</title></circle>"
            )
    parts += _legend(frame, legend)
    parts.append("</svg>")
    return "".join(parts)
