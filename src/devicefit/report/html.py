"""The self-contained HTML report: one file, inline CSS and SVG, no scripts, no network."""

from __future__ import annotations

import os
from html import escape
from typing import Any

from devicefit.report import svg
from devicefit.report.devices import headline_text
from devicefit.report.units import human_bytes, number

MB = 1024 * 1024
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:900px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f5f5f5}.pass{color:#107010}.warn{color:#a06000}.fail{color:#b00020}.skipped{color:#777}
.chart{width:100%;height:auto;border:1px solid #eee;margin:8px 0}
.chart .t{font-size:14px;font-weight:600}.chart .a{font-size:11px;fill:#444}.chart .g{stroke:#eee}
.chart .l{fill:none;stroke:#2060c0;stroke-width:1.5}.chart .p{fill:#2060c0}.chart .m{fill:none;stroke:#d00;stroke-width:2}
.chart .ml{font-size:12px;fill:#d00}.chart .thr{stroke:#d00;stroke-dasharray:4 3}.chart .b{fill:#5b8bd6}.chart .inf{fill:#d00}
code{background:#f4f4f4;padding:0 3px}
"""


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v: Any) -> str:
    return number(v)


def _verdicts(report: dict[str, Any]) -> str:
    rows = []
    for area, v in report["verdicts"].items():
        rows.append(
            f'<tr><td>{escape(area.replace("_", " "))}</td><td class="{escape(v["status"])}">{escape(v["status"].upper())}</td><td>{escape(v["reason"])}</td></tr>'
        )
    return "<table><tr><th>area</th><th>verdict</th><th>why</th></tr>" + "".join(rows) + "</table>"


def _numerics(n: dict[str, Any]) -> str:
    out = []
    for key in ("fp32", "fp16"):
        comp = n.get(key)
        if not comp:
            continue
        out.append(f"<h3>{key} interpreter vs {escape(comp['reference'])} ({comp['samples']} samples)</h3>")
        rows = []
        for output, metrics in comp["outputs"].items():
            for name, m in metrics.items():
                value = "nan" if m["value"] is None and not m["passed"] else m["value"]
                rows.append([output, name, value, m["threshold"], "pass" if m["passed"] else "FAIL"])
        if comp.get("accuracy"):
            acc = comp["accuracy"]
            rows.append(
                ["(labels)", "accuracy", acc["value"], acc["threshold"], "pass" if acc["passed"] else "FAIL"]
            )
            rows.append(["(labels)", "reference accuracy", comp.get("reference_accuracy"), None, ""])
        out.append(_table(["output", "metric", "value", "bound", "verdict"], rows))
    d = n.get("divergence")
    if d:
        per_op = d["per_op"]
        first = d["first_divergent"]
        out.append(
            svg.line_chart(
                [o["rel_error"] for o in per_op],
                "fp16 vs fp32 relative error along the program",
                "relative error",
                labels=[f"{o['op']} ({o['op_type']})" for o in per_op],
                marker=per_op.index(first) if first in per_op else None,
                marker_label=f"first divergence: {first['op']}" if first else "",
                threshold=d["tolerance"],
                log=True,
            )
        )
        if first:
            out.append(
                f"<p>fp16 first diverges beyond {d['tolerance']:g} at <code>{escape(first['op'])}</code> ({escape(first['op_type'])}).</p>"
            )
        for kind in ("overflow", "underflow"):
            if d[kind]:
                rows = [
                    [o["op"], o["op_type"], o["overflow"] + o["nonfinite"], o["underflow"]] for o in d[kind]
                ]
                out.append(
                    f"<p>fp16 {kind}:</p>"
                    + _table(["op", "type", "overflowed values", "flushed values"], rows)
                )
    return "".join(out)


def _size(s: dict[str, Any]) -> str:
    rows = [[p, human_bytes(b)] for p, b in s["bytes_at"].items()]
    out = [f"<p>{s['parameters']:,} parameters; package on disk: {human_bytes(s['package_bytes'])}.</p>"]
    out.append(_table(["weights stored as", "size"], rows))
    layers = sorted(s["layers"], key=lambda x: -x["bytes"])[:25]
    out.append(
        svg.bar_chart(
            [x.get("where") or f"{x['op']} ({x['op_type']})" for x in layers],
            [x["bytes"] / 1024 for x in layers],
            "weight size by layer (largest 25)",
            "KiB",
        )
    )
    return "".join(out)


def _memory(m: dict[str, Any]) -> str:
    per_op = m["per_op"]
    scale, unit = (1024, "KiB") if m["peak_activation_bytes"] < MB else (MB, "MiB")
    out = [
        svg.line_chart(
            [o["bytes"] / scale for o in per_op],
            "live activation memory along the program",
            unit,
            labels=[o["op"] for o in per_op],
            marker=m["peak_index"],
            marker_label=f"peak {human_bytes(m['peak_activation_bytes'])} at {m['peak_op']}",
        )
    ]
    if m.get("peak_advice"):
        out.append(f"<p>{escape(m['peak_advice'])}.</p>")
    out.append(
        f"<p>Working set = weights {human_bytes(m['weight_bytes'])} + peak activations {human_bytes(m['peak_activation_bytes'])} = <b>{human_bytes(m['working_set_bytes'])}</b>{' (approximate: dynamic shapes)' if m['approximate'] else ''}.</p>"
    )
    rows = [
        [
            f["name"],
            f["budget_mb"],
            None if f["used_fraction"] is None else f"{100 * f['used_fraction']:.3g}%",
            f["verdict"],
            f["budget_derivation"],
        ]
        for f in m["fits"]
    ]
    out.append(_table(["device", "app budget (MB)", "used", "verdict", "how the budget is derived"], rows))
    return "".join(out)


MAX_LINT_ROWS = 200


def _neural_engine(a: dict[str, Any]) -> str:
    out = [
        f'<p class="warn">{escape(a["disclaimer"])}</p>',
        f"<p>Predicted: {a['fallback_ops']} of {a['ops']} ops ({a['fallback_ops_share']:.0%}) and"
        f" {a['fallback_flops_share']:.0%} of FLOPs likely fall back to the CPU/GPU; {a['maybe_ops']} may fall"
        f" back; {a['transitions']} Neural Engine &lt;-&gt; CPU/GPU transitions"
        + (
            f"; the whole model is barred by {escape(', '.join(a['ne_barred_by']))}"
            if a["ne_barred_by"]
            else ""
        )
        + ".</p>",
    ]
    if a["reasons"]:
        rows = [
            [
                r["rule"],
                r["title"],
                r["severity"],
                "whole program" if r["scope"] == "program" else r["ops"],
                f"{r['flops_share']:.0%}",
                r["reason"],
                r["fix"],
                r["source"],
            ]
            for r in a["reasons"]
        ]
        out.append(_table(["rule", "constraint", "severity", "ops", "FLOPs", "e.g.", "fix", "source"], rows))
    flagged = [o for o in a["per_op"] if o["findings"]]
    if flagged:
        rows = [
            [
                o["index"],
                o.get("where") or o["op"],
                o["op_type"],
                o["verdict"],
                "; ".join(f["reason"] for f in o["findings"]),
            ]
            for o in flagged[:MAX_LINT_ROWS]
        ]
        out.append(
            "<p>Flagged ops" + (f" (first {MAX_LINT_ROWS})" if len(flagged) > MAX_LINT_ROWS else "") + ":</p>"
        )
        out.append(_table(["#", "where (PyTorch module, then MIL op)", "type", "verdict", "why"], rows))
    else:
        out.append("<p>No op matches a published Neural Engine constraint.</p>")
    return "".join(out)


def _latency(lat: dict[str, Any]) -> str:
    def ms(u: dict[str, Any] | None) -> str:
        if not u or u["at_best_ms"] is None:
            return "-"
        return f"{u['at_best_ms']:.3g}" + ("" if u["complete"] else " (partial)")

    caveats = any(e["assumptions"] for e in lat["devices"])
    rows = [
        [
            headline_text(e),
            *(ms(e["units"].get(u)) for u in ("ne", "gpu", "cpu")),
            e["best"]["key_assumption"] if e["best"] else "",
            *(["; ".join(e["assumptions"])] if caveats else []),
        ]
        for e in lat["devices"]
    ]
    heads = ["lower bound", "Neural Engine ms", "GPU ms", "CPU ms", "key assumption"]
    out = [
        f"<p>Each figure is a {escape(lat['note'])}: the model cannot run faster on that unit; real latency is"
        " higher.</p>",
        _table([*heads, *(["other caveats"] if caveats else [])], rows),
        "<p>Assumptions:</p><ul>" + "".join(f"<li>{escape(x)}</li>" for x in lat["assumptions"]) + "</ul>",
    ]
    return "".join(out)


def render_html(report: dict[str, Any]) -> str:
    """The whole report as one self-contained HTML page."""
    model = report["model"]
    title = f"devicefit check: {model['origin']}"
    body = [
        f"<h1>{escape(title)}</h1>",
        f"<p>devicefit {escape(report['tool']['version'])}, report schema {escape(report['schema_version'])}, {escape(report['created'])}.</p>",
    ]
    body.append("<h2>Verdicts</h2>" + _verdicts(report))
    for w in report["warnings"]:
        body.append(f'<p class="warn">warning: {escape(w)}</p>')
    conv = report["convert"]
    body.append("<h2>Conversion</h2>")
    if conv["ok"]:
        body.append(
            f"<p>frontend {escape(_fmt(conv['frontend']))}, deployment target {escape(report['options']['deployment_target'])}, precision {escape(report['options']['precision'])}, {_fmt(conv['seconds'])} s.</p>"
        )
    else:
        body.append(f'<p class="fail">{escape(conv["error"] or "failed")}</p>')
        if conv["unsupported"]:
            body.append(
                _table(
                    ["op", "where", "module", "hint", "count"],
                    [
                        [u["op"], u["location"], u["module_path"], u["hint"], u["count"]]
                        for u in conv["unsupported"]
                    ],
                )
            )
    if report.get("data"):
        d = report["data"]
        body.append(
            f"<h2>Numerics</h2><p>data: {escape(d['origin'])}, {d['samples']} samples{', labelled' if d['labels'] else ''}.</p>"
        )
    if report.get("numerics"):
        body.append(_numerics(report["numerics"]))
    if report.get("size"):
        body.append("<h2>Size</h2>" + _size(report["size"]))
    if report.get("memory"):
        body.append("<h2>Memory</h2>" + _memory(report["memory"]))
    if report.get("ane"):
        body.append("<h2>Neural Engine lint (prediction)</h2>" + _neural_engine(report["ane"]))
    if report.get("latency"):
        body.append("<h2>Latency lower bounds</h2>" + _latency(report["latency"]))
    return f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title><style>{_CSS}</style></head><body>{"".join(body)}</body></html>\n'


def write_html(path: str | os.PathLike[str], report: dict[str, Any]) -> None:
    """Write the HTML page atomically (callers check ``--force`` first)."""
    from devicefit.io import atomic_write_text

    atomic_write_text(path, render_html(report))
