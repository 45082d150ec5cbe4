"""A self-contained HTML profile report: tables and inline SVG plots drawn here (no JS, no network)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np

from devicefit.profile.harness import EngineProfile, ProfileReport

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
W, H, PAD = 560, 220, 42


def _fmt(v: float | None, unit: str = "", digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}g}{unit}"


def histogram_svg(samples: Sequence[float], title: str, bins: int = 30, color: str = _COLORS[0]) -> str:
    """A latency histogram (ms) as an inline SVG string."""
    if not samples:
        return ""
    x = np.asarray(samples, dtype=np.float64)
    lo, hi = float(x.min()), float(np.quantile(x, 0.995))  # clip the far tail so the body is readable
    if hi <= lo:
        hi = lo + 1e-6
    counts, edges = np.histogram(np.clip(x, lo, hi), bins=bins, range=(lo, hi))
    top = max(int(counts.max()), 1)
    bw = (W - 2 * PAD) / bins
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img">']
    parts.append(f'<text x="{W / 2}" y="14" text-anchor="middle" font-size="12">{html.escape(title)}</text>')
    for i, c in enumerate(counts):
        h = (H - 2 * PAD) * c / top
        parts.append(
            f'<rect x="{PAD + i * bw:.1f}" y="{H - PAD - h:.1f}" width="{bw - 1:.1f}" height="{h:.1f}" fill="{color}">'
            f"<title>{edges[i]:.3g}–{edges[i + 1]:.3g} ms: {c}</title></rect>"
        )
    for q, dash in ((0.5, "4 2"), (0.9, "2 2"), (0.99, "1 2")):
        v = float(np.quantile(x, q))
        px = PAD + (min(v, hi) - lo) / (hi - lo) * (W - 2 * PAD)
        parts.append(
            f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{PAD - 10}" y2="{H - PAD}" stroke="#333" stroke-dasharray="{dash}"/>'
        )
        parts.append(f'<text x="{px + 2:.1f}" y="{PAD - 2}" font-size="10">p{int(q * 100)}</text>')
    parts += _axes(lo, hi, 0, top, "latency (ms)", "count")
    parts.append("</svg>")
    return "".join(parts)


def throughput_svg(profiles: Sequence[EngineProfile]) -> str:
    """Requests/s against requests in flight, one line per engine."""
    series = []
    for p in profiles:
        pts = [(t.level, t.per_second) for t in p.throughput if t.mode == "async"]
        if pts:
            series.append((f"{p.engine} {p.compute_units} {p.precision}", pts))
    if not series:
        return ""
    xmax = max(x for _, pts in series for x, _ in pts)
    ymax = max(y for _, pts in series for _, y in pts) * 1.1 or 1.0
    xmin = 1
    span = max(xmax - xmin, 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img">']
    parts.append(
        f'<text x="{W / 2}" y="14" text-anchor="middle" font-size="12">throughput vs requests in flight</text>'
    )
    for i, (label, pts) in enumerate(series):
        color = _COLORS[i % len(_COLORS)]
        xy = [(PAD + (x - xmin) / span * (W - 2 * PAD), H - PAD - y / ymax * (H - 2 * PAD)) for x, y in pts]
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in xy)}"/>'
        )
        for (a, b), (x, y) in zip(xy, pts):
            parts.append(
                f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{color}"><title>{x} in flight: {y:.1f}/s</title></circle>'
            )
        parts.append(
            f'<text x="{W - PAD - 150}" y="{PAD + 12 * i}" font-size="10" fill="{color}">{html.escape(label)}</text>'
        )
    parts += _axes(xmin, xmax, 0, ymax, "requests in flight", "requests / s")
    parts.append("</svg>")
    return "".join(parts)


def _axes(x0: float, x1: float, y0: float, y1: float, xlabel: str, ylabel: str) -> list[str]:
    out = [
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#000"/>',
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{H - PAD}" stroke="#000"/>',
        f'<text x="{PAD}" y="{H - PAD + 14}" font-size="10">{x0:.3g}</text>',
        f'<text x="{W - PAD}" y="{H - PAD + 14}" font-size="10" text-anchor="end">{x1:.3g}</text>',
        f'<text x="{W / 2}" y="{H - 8}" font-size="11" text-anchor="middle">{html.escape(xlabel)}</text>',
        f'<text x="{PAD - 4}" y="{H - PAD}" font-size="10" text-anchor="end">{y0:.3g}</text>',
        f'<text x="{PAD - 4}" y="{PAD + 4}" font-size="10" text-anchor="end">{y1:.3g}</text>',
        f'<text x="12" y="{H / 2}" font-size="11" transform="rotate(-90 12 {H / 2})" text-anchor="middle">'
        f"{html.escape(ylabel)}</text>",
    ]
    return out


def bounds_html(report: ProfileReport) -> str:
    """The device lower-bound table (empty without ``--target``)."""
    if not report.device_bounds:
        return ""
    rows = []
    for e in report.device_bounds:
        best = e["best"]
        cells = [
            e["name"],
            best["unit_name"] if best else "-",
            _fmt(best["at_best_ms"], " ms") + (" (partial)" if best["partial"] else "")
            if best
            else "no bound",
            best["key_assumption"] if best else "",
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    heads = ["device", "compute unit", "at best (lower bound)", "key assumption"]
    return (
        "<h2>Device lower bounds (roofline, not measured)</h2>"
        f"<p>{html.escape(report.device_bounds[0]['note'])}: the model cannot run faster on that device and unit;"
        " the table above is measured on this host.</p>"
        f"<table><tr>{''.join(f'<th>{h}</th>' for h in heads)}</tr>{''.join(rows)}</table>"
    )


def render_html(report: ProfileReport) -> str:
    """The whole report as one HTML page."""
    rows = []
    for p in report.profiles:
        lat = p.latency
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(c))}</td>"
                for c in (
                    p.engine,
                    p.compute_units,
                    p.precision,
                    _fmt(p.uncached_load_s, " s"),
                    _fmt(p.cached_load_s, " s"),
                    _fmt(p.first_predict_ms, " ms"),
                    _fmt(lat.p50.value if lat.p50 else None, " ms"),
                    _fmt(lat.p90.value if lat.p90 else None, " ms"),
                    _fmt(lat.p99.value if lat.p99 else None, " ms"),
                    _fmt(p.peak_rss_mb, " MB", 4),
                    p.error or "",
                )
            )
            + "</tr>"
        )
    heads = "engine units precision uncached-load cached-load first p50 p90 p99 peak-RSS note".split()
    plots = [
        histogram_svg(
            p.latency.samples_ms, f"{p.engine} {p.compute_units} {p.precision}", color=_COLORS[i % 6]
        )
        for i, p in enumerate(report.profiles)
    ]
    host = ", ".join(f"{k}={v}" for k, v in report.host.items())
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>devicefit profile</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}</style></head><body>"
        f"<h1>devicefit profile: {html.escape(report.model)}</h1><p>host: {html.escape(host)}</p>"
        f"<table><tr>{''.join(f'<th>{h}</th>' for h in heads)}</tr>{''.join(rows)}</table>"
        f"{bounds_html(report)}"
        f"<h2>Latency distribution</h2>{''.join(plots)}"
        f"<h2>Throughput</h2>{throughput_svg(report.profiles)}"
        "</body></html>"
    )
