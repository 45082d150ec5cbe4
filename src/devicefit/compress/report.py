"""Render a search result: rich tables for the terminal, a self-contained HTML page with inline SVG plots."""

from __future__ import annotations

import html
import math
from typing import Any

from devicefit.compress.search import SearchResult


def _fmt(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.6g}"


def sensitivity_table(result: SearchResult) -> Any:
    """Per-layer sensitivity: the metric with only that weight compressed at each choice."""
    from rich.table import Table

    sens = result.sensitivity
    table = Table(title=f"per-layer sensitivity ({sens.metric_name}; fp16 base {_fmt(sens.base_metric)})")
    table.add_column("weight")
    table.add_column("layer")
    table.add_column("elements", justify="right")
    for c in sens.choices[:-1]:
        table.add_column(c, justify="right")
    table.add_column("chosen")
    for layer in sens.layers:
        cells = [_fmt(layer.metric.get(c)) for c in sens.choices[:-1]]
        table.add_row(
            layer.weight,
            layer.layer,
            str(layer.numel),
            *cells,
            result.chosen.assignment.get(layer.weight, "fp16"),
        )
    return table


def result_table(result: SearchResult, origin: str) -> Any:
    """The summary: sizes, metric, verdict."""
    from rich.table import Table

    table = Table(title=f"compress {origin} under {result.budget.text}")
    table.add_column("")
    table.add_column("value", justify="right")
    rows = [
        (
            "original (as given)",
            f"{result.original_bytes:,} B  {result.budget.metric} {_fmt(result.original_metric)}",
        ),
        ("fp16", f"{result.base_bytes:,} B"),
        (
            "chosen",
            f"{result.chosen.bytes:,} B  ({result.base_bytes / max(result.chosen.bytes, 1):.2f}x vs fp16)",
        ),
        (f"chosen {result.budget.metric} (search)", _fmt(result.chosen.metric)),
        (f"chosen {result.budget.metric} (re-measured)", _fmt(result.verified_metric)),
        ("bound", _fmt(result.threshold)),
        ("budget met", "yes" if result.met else "NO"),
        ("candidates evaluated", str(len(result.candidates))),
    ]
    for k, v in rows:
        table.add_row(k, v)
    return table


def pareto_svg(result: SearchResult, width: int = 640, height: int = 360) -> str:
    """Scatter of every candidate (bytes vs metric), the Pareto front as a line, the bound dashed."""
    pts = [c for c in result.candidates if math.isfinite(c.metric)]
    if not pts:
        return "<p>no finite candidates</p>"
    pad = 50
    xs = [c.bytes for c in pts]
    ys = [c.metric for c in pts] + ([result.threshold] if math.isfinite(result.threshold) else [])
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1e-9

    def sx(v: float) -> float:
        return pad + (v - x0) / (x1 - x0) * (width - 2 * pad)

    def sy(v: float) -> float:
        return height - pad - (v - y0) / (y1 - y0) * (height - 2 * pad)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white" stroke="#ccc"/>',
    ]
    parts.append(
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="black"/>'
    )
    parts.append(f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="black"/>')
    for v in (x0, (x0 + x1) / 2, x1):
        parts.append(f'<text x="{sx(v):.1f}" y="{height - pad + 15}" text-anchor="middle">{v:,.0f} B</text>')
    for v in (y0, (y0 + y1) / 2, y1):
        parts.append(f'<text x="{pad - 4}" y="{sy(v) + 4:.1f}" text-anchor="end">{v:.4g}</text>')
    if math.isfinite(result.threshold):
        y = sy(result.threshold)
        parts.append(
            f'<line x1="{pad}" y1="{y:.1f}" x2="{width - pad}" y2="{y:.1f}" stroke="red" stroke-dasharray="4"/>'
        )
        parts.append(f'<text x="{width - pad}" y="{y - 4:.1f}" text-anchor="end" fill="red">budget</text>')
    front = result.front
    line = " ".join(f"{sx(c.bytes):.1f},{sy(c.metric):.1f}" for c in front if math.isfinite(c.metric))
    parts.append(f'<polyline points="{line}" fill="none" stroke="#1f77b4"/>')
    for c in pts:
        color = "#2ca02c" if c.passed else "#999"
        r = 6 if c is result.chosen else 3.5
        parts.append(
            f'<circle cx="{sx(c.bytes):.1f}" cy="{sy(c.metric):.1f}" r="{r}" fill="{color}">'
            f"<title>{c.bytes:,} B, {result.budget.metric} {c.metric:.6g}</title></circle>"
        )
    parts.append(f'<text x="{width / 2}" y="{height - 10}" text-anchor="middle">weight bytes</text>')
    parts.append(
        f'<text x="12" y="{height / 2}" transform="rotate(-90 12 {height / 2})" text-anchor="middle">'
        f"{result.budget.metric}</text></svg>"
    )
    return "".join(parts)


def sensitivity_svg(result: SearchResult, width: int = 640) -> str:
    """Horizontal bars: log10 relative output noise per layer at the smallest choice."""
    sens = result.sensitivity
    choice = sens.choices[0]
    layers = sens.most_sensitive(choice)
    row = 22
    height = 30 + row * len(layers)
    vals = [max(layer.noise.get(choice, 0.0), 1e-12) for layer in layers]
    logs = [math.log10(v) if math.isfinite(v) else 2.0 for v in vals]
    lo = min([*logs, -8.0])
    hi = max([*logs, lo + 1])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11">']
    for i, (layer, lg) in enumerate(zip(layers, logs)):
        y = 20 + i * row
        w = (lg - lo) / (hi - lo) * (width - 330)  # leave room after the longest bar for its value label
        parts.append(f'<text x="0" y="{y + 12}">{html.escape(layer.weight[:36])}</text>')
        parts.append(f'<rect x="250" y="{y}" width="{max(w, 1):.1f}" height="{row - 6}" fill="#ff7f0e"/>')
        parts.append(f'<text x="{255 + max(w, 1):.1f}" y="{y + 12}">{vals[i]:.2e}</text>')
    parts.append(f'<text x="250" y="12">relative output noise with only this weight at {choice}</text></svg>')
    return "".join(parts)


def html_report(result: SearchResult, origin: str) -> str:
    """A self-contained HTML page: summary, Pareto plot, sensitivity plot, plan."""
    d = result.to_dict()
    rows = "".join(
        f"<tr><td>{html.escape(w)}</td><td>{html.escape(label)}</td></tr>" for w, label in d["plan"].items()
    )
    verdict = "met" if result.met else "NOT met (best candidate shown)"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>devicefit compress</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}</style>
</head><body><h1>devicefit compress: {html.escape(origin)}</h1>
<p>Budget <b>{html.escape(result.budget.text)}</b> (bound {_fmt(result.threshold)}): {verdict}.
Chosen: {result.chosen.bytes:,} B vs fp16 {result.base_bytes:,} B ({d["compression_ratio_vs_fp16"]:.2f}x),
{result.budget.metric} {_fmt(result.chosen.metric)} (re-measured on the built package: {_fmt(result.verified_metric)}).</p>
<h2>Size vs {result.budget.metric} (Pareto front)</h2>{pareto_svg(result)}
<h2>Per-layer sensitivity</h2>{sensitivity_svg(result)}
<h2>Plan</h2><table><tr><th>weight</th><th>compression</th></tr>{rows}</table>
<h2>Re-apply with coremltools</h2><pre>{html.escape(_yaml_or_note(result))}</pre>
</body></html>"""


def _yaml_or_note(result: SearchResult) -> str:
    try:
        return result.plan_yaml()
    except Exception as e:  # a plan YAML cannot express every plan (e.g. mixed families)
        return f"(no single YAML: {e})"
