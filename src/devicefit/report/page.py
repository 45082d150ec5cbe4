"""The HTML base every devicefit page shares: one stylesheet, tables, folded sections, legends.

Pages are self-contained (inline CSS and SVG, no scripts, no network). Each section is an ``<section>`` with
an ``id`` so tests (and readers) can find it; a section with nothing to show is left out, never an empty
heading.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from devicefit.report.units import number

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:960px;color:#222;
padding:0 12px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
h3{font-size:15px}.meta{color:#666}
table{border-collapse:collapse;margin:8px 0;max-width:100%}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top;overflow-wrap:break-word}th{background:#f5f5f5}td.n{text-align:right;
white-space:nowrap}
.pass{color:#107010}.warn{color:#a06000}.fail{color:#b00020}.skipped{color:#777}
details{margin:8px 0}summary{cursor:pointer;color:#2060c0}
.legend{font-size:12px;color:#444;margin:4px 0 10px}.legend span{margin-right:14px;white-space:nowrap}
.chart{width:100%;height:auto;border:1px solid #eee;margin:8px 0}
.chart .t{font-size:14px;font-weight:600}.chart .a{font-size:11px;fill:#444}.chart .g{stroke:#eee}
.chart .ax{stroke:#888}.chart .l{fill:none;stroke:#2060c0;stroke-width:1.5}.chart .p{fill:#2060c0}
.chart .m{fill:none;stroke:#d00;stroke-width:2}.chart .ml{font-size:12px;fill:#d00}
.chart .thr{stroke:#d00;stroke-dasharray:4 3}.chart .tl{font-size:11px;fill:#d00}.chart .b{fill:#5b8bd6}
.chart .inf{fill:#d00}.chart .ok{fill:#2ca02c}.chart .no{fill:#999}
.chart .q0{stroke:#333;stroke-dasharray:4 2}.chart .q1{stroke:#333;stroke-dasharray:2 2}
.chart .q2{stroke:#333;stroke-dasharray:1 2}
.chart .s0{fill:none;stroke:#1f77b4;stroke-width:2}.chart .s1{fill:none;stroke:#d62728;stroke-width:2}
.chart .s2{fill:none;stroke:#2ca02c;stroke-width:2}.chart .s3{fill:none;stroke:#9467bd;stroke-width:2}
.chart .s4{fill:none;stroke:#ff7f0e;stroke-width:2}.chart .s5{fill:none;stroke:#8c564b;stroke-width:2}
.chart .s0d{fill:#1f77b4}.chart .s1d{fill:#d62728}.chart .s2d{fill:#2ca02c}.chart .s3d{fill:#9467bd}
.chart .s4d{fill:#ff7f0e}.chart .s5d{fill:#8c564b}
code,pre{background:#f4f4f4;padding:0 3px}pre{padding:8px;overflow-x:auto}
"""

# What each marker in the tables and charts means, shown once per page where the marker appears.
MARKERS = {
    "PASS": "the check met its bound",
    "WARN": "worth a look; does not fail the check",
    "FAIL": "the check missed its bound (the command exits 1)",
    "SKIPPED": "not run (an earlier stage failed)",
    "partial": "a catalog figure is missing, so one roofline term was dropped: not comparable with full bounds",
    "estimate": "the catalog figure is an estimate, not a published number",
    "n/a": "the unit cannot run Core ML models on that device",
}


def cell(value: Any) -> str:
    """A table cell: numbers right-aligned with 4 significant digits, text escaped."""
    if isinstance(value, Raw):
        return f"<td>{value.html}</td>"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'<td class="n">{escape(number(value))}</td>'
    return f"<td>{escape(number(value))}</td>"


class Raw:
    """Markup a page builder made itself (already escaped), passed through a table cell as is."""

    def __init__(self, html: str):
        self.html = html


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(cell(c) for c in r) + "</tr>" for r in rows)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><tr>{head}</tr>{body}</table>"


def status(text: str) -> Raw:
    """A verdict cell (PASS / WARN / FAIL / SKIPPED) coloured by its class."""
    key = text.lower()
    return Raw(f'<span class="{escape(key)}">{escape(text.upper())}</span>')


def details(summary: str, body: str, open_: bool = False) -> str:
    """A folded block: ``summary`` always visible, ``body`` on demand."""
    return f"<details{' open' if open_ else ''}><summary>{escape(summary)}</summary>{body}</details>"


def legend(keys: Iterable[str], extra: dict[str, str] | None = None) -> str:
    """The legend of the markers a section uses (``keys`` of :data:`MARKERS`, plus ``extra``)."""
    entries = {k: MARKERS[k] for k in keys if k in MARKERS} | (extra or {})
    if not entries:
        return ""
    # spaces between the spans are where the legend may wrap
    spans = " ".join(f"<span><b>{escape(k)}</b>: {escape(v)}</span>" for k, v in entries.items())
    return f'<p class="legend">{spans}</p>'


def section(ident: str, title: str, body: str) -> str:
    """A titled section; empty ``body`` gives nothing (no heading without content)."""
    if not body:
        return ""
    return f'<section id="{escape(ident)}"><h2>{escape(title)}</h2>{body}</section>'


def page(title: str, meta: str, sections: Iterable[str]) -> str:
    """The whole self-contained page."""
    body = "".join(s for s in sections if s)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head><body>'
        f'<h1>{escape(title)}</h1><p class="meta">{escape(meta)}</p>{body}</body></html>\n'
    )


def io_table(inputs: Sequence[dict[str, Any]], outputs: Sequence[dict[str, Any]]) -> str:
    """Inputs and outputs: name, kind, dtype, shape and accepted shapes of flexible inputs."""
    rows = []
    for kind, feats in (("input", inputs), ("output", outputs)):
        for f in feats:
            rows.append([kind, f["name"], f.get("dtype"), shape_text(f.get("shape")), flexible_text(f)])
    if not rows:
        return ""
    return table(["", "name", "dtype", "shape (default)", "accepted shapes"], rows)


def shape_text(shape: Sequence[Any] | None) -> str:
    if shape is None:
        return "-"
    return "x".join("?" if d is None else str(d) for d in shape) or "scalar"


def flexible_text(feature: dict[str, Any]) -> str:
    """``1x3x(64..512)x(64..512)`` for a range, ``1x3x224x224 | 1x3x448x448`` for enumerated shapes."""
    if feature.get("enumerated_shapes"):
        return " | ".join(shape_text(s) for s in feature["enumerated_shapes"])
    if feature.get("shape_range"):
        return "x".join(
            str(lo) if lo == hi else f"({lo}..{'inf' if hi is None or hi < 0 else hi})"
            for lo, hi in feature["shape_range"]
        )
    return "fixed"
