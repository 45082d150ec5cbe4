"""The self-contained HTML page of ``devicefit check``: one file, inline CSS and SVG, no scripts, no network.

Built from the JSON report dict only (the command hands data, never markup), with the shared page base
(:mod:`devicefit.report.page`) and the one chart module (:mod:`devicefit.report.charts`).
"""

from __future__ import annotations

import os
from html import escape
from typing import Any

from devicefit.report import charts
from devicefit.report.devices import headline_text
from devicefit.report.page import Raw, details, io_table, legend, page, section, shape_text, status, table
from devicefit.report.units import human_bytes, human_ms, number

MB = 1024 * 1024
MAX_LINT_ROWS = 200


def _shown_devices(report: dict[str, Any]) -> set[str]:
    """The devices shown unfolded: the ``--target`` ones, else those the latency section covers."""
    chosen = set(report["options"].get("devices") or [])
    if not chosen and report.get("latency"):
        chosen = {e["device"] for e in report["latency"]["devices"]}
    return chosen


def _split(rows: list[Any], keep: Any) -> tuple[list[Any], list[Any]]:
    return [r for r in rows if keep(r)], [r for r in rows if not keep(r)]


def _verdicts(report: dict[str, Any]) -> str:
    rows = [
        [area.replace("_", " "), status(v["status"]), v["reason"]] for area, v in report["verdicts"].items()
    ]
    used = {v["status"].upper() for v in report["verdicts"].values()}
    return table(["area", "verdict", "why"], rows) + legend(
        k for k in ("PASS", "WARN", "FAIL", "SKIPPED") if k in used
    )


def _model(report: dict[str, Any]) -> str:
    m = report["model"]
    if not m.get("inputs") and not m.get("outputs"):
        return ""
    counts = ", ".join(
        f"{k} {v}" for k, v in sorted((m.get("op_counts") or {}).items(), key=lambda kv: -kv[1])
    )
    return (
        io_table(m.get("inputs") or [], m.get("outputs") or [])
        + f"<p>opset {escape(str(m.get('opset')))}; ops: {escape(counts)}.</p>"
    )


def _conversion(report: dict[str, Any]) -> str:
    conv, o = report["convert"], report["options"]
    out = []
    if conv["ok"]:
        out.append(
            f"<p>frontend {escape(number(conv['frontend']))}, deployment target {escape(o['deployment_target'])}, "
            f"precision {escape(o['precision'])}, {number(conv['seconds'])} s"
            + (f"; rescued ops: {escape(', '.join(conv['rescued']))}" if conv.get("rescued") else "")
            + ".</p>"
        )
    else:
        out.append(f'<p class="fail">{escape(conv["error"] or "failed")}</p>')
    if conv.get("unsupported"):
        rows = [
            [u.get("location"), u.get("module_path"), u.get("op"), u.get("hint"), u.get("count", 1)]
            for u in conv["unsupported"]
        ]
        out.append(table(["where (file:line)", "module", "op", "what to do", "count"], rows))
    frontends = conv.get("frontends") or []
    if frontends:
        rows = [[f["name"], f["status"], f.get("seconds"), f.get("error") or ""] for f in frontends]
        out.append(details("conversion frontends", table(["frontend", "status", "seconds", "error"], rows)))
    return "".join(out)


def _per_shape(report: dict[str, Any]) -> str:
    """FLOPs and the best bound per shown device at each accepted shape."""
    rows = (report.get("latency") or {}).get("per_shape") or []
    if not rows:
        return ""
    names = {e["device"]: e["name"] for e in report["latency"]["devices"]}
    shown = [d for d in names if d in _shown_devices(report)] or list(names)
    body = []
    for r in rows:
        cells: list[Any] = [r["label"], ", ".join(f"{k}={shape_text(v)}" for k, v in r["shapes"].items())]
        cells.append(charts.fmt(r["flops"]) if r["flops"] is not None else "not computed")
        for dev in shown:
            best = (r.get("best") or {}).get(dev)
            if best is None:
                cells.append("-")
            elif best["partial"]:
                cells.append(Raw(f"<i>partial</i> ({escape(human_ms(best['at_best_ms']))})"))
            else:
                cells.append(f"{human_ms(best['at_best_ms'])} {best['unit_name']}")
        body.append(cells)
    heads = ["shape", "inputs", "FLOPs", *(f"at best on {names[d]}" for d in shown)]
    return "<h3>Cost at each accepted shape</h3>" + table(heads, body) + legend(["partial"])


def _flexible(report: dict[str, Any]) -> str:
    flex = (report.get("extras") or {}).get("flexible")
    if not flex:
        return _per_shape(report)
    rows = [
        [
            ", ".join(f"{k}={shape_text(v)}" for k, v in c["shapes"].items()),
            status("pass" if c["ok"] else "fail"),
            c.get("rel_error"),
            c.get("error") or "",
        ]
        for c in flex["checks"]
    ]
    out = [
        f"<p>Each accepted shape run by the interpreter and compared with PyTorch (relative error bound "
        f"{number(flex.get('rtol'))}).</p>",
        table(["shape", "verdict", "relative error", "error"], rows),
    ]
    out += [f"<p>{escape(line)}</p>" for line in flex.get("ne_implication") or []]
    out.append(_per_shape(report))
    return "".join(out)


def _numerics(report: dict[str, Any]) -> str:
    n = report.get("numerics")
    if not n:
        return ""
    out = []
    if report.get("data"):
        d = report["data"]
        out.append(
            f"<p>data: {escape(d['origin'])}, {d['samples']} samples{', labelled' if d['labels'] else ''}.</p>"
        )
    for key in ("fp32", "fp16"):
        comp = n.get(key)
        if not comp:
            continue
        out.append(f"<h3>{key} interpreter vs {escape(comp['reference'])} ({comp['samples']} samples)</h3>")
        rows = []
        for output, metrics in comp["outputs"].items():
            for name, m in metrics.items():
                value = "nan" if m["value"] is None and not m["passed"] else m["value"]
                rows.append([output, name, value, m["threshold"], status("pass" if m["passed"] else "fail")])
        if comp.get("accuracy"):
            acc = comp["accuracy"]
            rows.append(
                [
                    "(labels)",
                    "accuracy",
                    acc["value"],
                    acc["threshold"],
                    status("pass" if acc["passed"] else "fail"),
                ]
            )
            rows.append(["(labels)", "reference accuracy", comp.get("reference_accuracy"), None, ""])
        out.append(table(["output", "metric", "value", "bound", "verdict"], rows))
    out.append(_divergence(n.get("divergence")))
    return "".join(out)


def _where(o: dict[str, Any]) -> str:
    return str(o.get("where") or o["op"])


def _divergence(d: dict[str, Any] | None) -> str:
    if not d:
        return ""
    per_op, first = d["per_op"], d["first_divergent"]
    out = [
        charts.line_chart(
            [o["rel_error"] for o in per_op],
            "fp16 vs fp32 relative error along the program",
            "relative error (log scale)",
            labels=[f"{_where(o)} ({o['op_type']})" for o in per_op],
            marker=per_op.index(first) if first in per_op else None,
            marker_label=f"first divergence: {_where(first)}" if first else "",
            threshold=d["tolerance"],
            threshold_label="divergence tolerance",
            log=True,
            series_label="relative error of each op's output",
        )
    ]
    if first:
        out.append(
            f"<p>fp16 first diverges beyond {d['tolerance']:g} at <code>{escape(_where(first))}</code> "
            f"({escape(first['op_type'])}).</p>"
        )
    for kind in ("overflow", "underflow"):
        if d[kind]:
            rows = [
                [_where(o), o["op_type"], o["overflow"] + o["nonfinite"], o["underflow"]] for o in d[kind]
            ]
            out.append(f"<h3>fp16 {kind}</h3>")
            out.append(
                table(
                    ["where (PyTorch module, then MIL op)", "type", "overflowed values", "flushed values"],
                    rows,
                )
            )
    return "".join(out)


def _size(s: dict[str, Any] | None) -> str:
    if not s:
        return ""
    rows = [[p, human_bytes(b)] for p, b in s["bytes_at"].items()]
    out = [f"<p>{s['parameters']:,} parameters; package on disk: {human_bytes(s['package_bytes'])}.</p>"]
    out.append(table(["weights stored as", "size"], rows))
    layers = sorted(s["layers"], key=lambda x: -x["bytes"])[:25]
    if layers:
        scale, unit = (MB, "MiB") if layers[0]["bytes"] >= MB else (1024, "KiB")
        out.append(
            charts.bar_chart(
                [x.get("where") or f"{x['op']} ({x['op_type']})" for x in layers],
                [x["bytes"] / scale for x in layers],
                "weight size by layer (largest 25)",
                unit,
            )
        )
    return "".join(out)


def _fit_rows(fits: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            f["name"],
            f["budget_mb"],
            None if f["used_fraction"] is None else f"{100 * f['used_fraction']:.3g}%",
            f["verdict"],
            f["budget_derivation"],
        ]
        for f in fits
    ]


def _peak_module(m: dict[str, Any]) -> str:
    """The PyTorch module of the peak (short, for the chart label), else the MIL op."""
    origin = m.get("peak_origin")
    if origin and origin.get("module_path") is not None:
        path = origin["module_path"] or "the top module"
        return f"{path} ({origin['module_type']})" if origin.get("module_type") else path
    return str(m["peak_op"])


def _memory(report: dict[str, Any]) -> str:
    m = report.get("memory")
    if not m:
        return ""
    per_op = m["per_op"]
    scale, unit = (1024, "KiB") if m["peak_activation_bytes"] < MB else (MB, "MiB")
    peak_where = m.get("peak_where") or m["peak_op"]
    out = [
        charts.line_chart(
            [o["bytes"] / scale for o in per_op],
            "live activation memory along the program",
            unit,
            labels=[o["op"] for o in per_op],
            marker=m["peak_index"],
            marker_label=f"peak {human_bytes(m['peak_activation_bytes'])} at {_peak_module(m)}",
            series_label="bytes live while each op runs",
        )
    ]
    if m.get("peak_advice"):
        out.append(f"<p>{escape(m['peak_advice'])}.</p>")
    elif peak_where:
        out.append(f"<p>Peak while running <code>{escape(str(peak_where))}</code>.</p>")
    out.append(
        f"<p>Working set = weights {human_bytes(m['weight_bytes'])} + peak activations "
        f"{human_bytes(m['peak_activation_bytes'])} = <b>{human_bytes(m['working_set_bytes'])}</b>"
        f"{' (approximate: dynamic shapes)' if m['approximate'] else ''}.</p>"
    )
    heads = ["device", "app budget (MB)", "used", "verdict", "how the budget is derived"]
    shown_ids = _shown_devices(report)
    shown, rest = _split(m["fits"], lambda f: f["device"] in shown_ids)
    if shown:
        out.append(table(heads, _fit_rows(shown)))
    if rest:
        fits = sum(1 for f in rest if f["fits"])
        out.append(
            details(
                f"{len(rest)} other devices ({fits} fit)"
                if shown
                else f"all {len(rest)} devices ({fits} fit)",
                table(heads, _fit_rows(rest)),
            )
        )
    out.append(
        legend(
            [],
            {
                "fits": "working set at most half the app budget",
                "tight": "over half of it (the app and Core ML share the budget)",
                "too big": "over the budget",
                "unknown": "no budget figure for the device",
            },
        )
    )
    return "".join(out)


def _neural_engine(a: dict[str, Any] | None) -> str:
    if not a:
        return ""
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
        out.append(table(["rule", "constraint", "severity", "ops", "FLOPs", "e.g.", "fix", "source"], rows))
    flagged = [o for o in a["per_op"] if o["findings"]]
    if flagged:
        rows = [
            [o["index"], _where(o), o["op_type"], o["verdict"], "; ".join(f["reason"] for f in o["findings"])]
            for o in flagged[:MAX_LINT_ROWS]
        ]
        more = f" (first {MAX_LINT_ROWS})" if len(flagged) > MAX_LINT_ROWS else ""
        out.append(f"<p>Flagged ops{more}:</p>")
        out.append(table(["#", "where (PyTorch module, then MIL op)", "type", "verdict", "why"], rows))
        out.append(
            legend(
                [],
                {
                    "fallback": "likely runs on the CPU/GPU",
                    "maybe": "may fall back, depending on sizes and OS",
                    "ne": "likely on the Neural Engine",
                },
            )
        )
    else:
        out.append("<p>No op matches a published Neural Engine constraint.</p>")
    return "".join(out)


def _bound_cell(u: dict[str, Any] | None) -> Any:
    if u is None:
        return "n/a"
    if u["at_best_ms"] is None:
        return "-"
    if not u["complete"]:
        return Raw(f"<i>partial</i> ({escape(human_ms(u['at_best_ms']))})")
    return human_ms(u["at_best_ms"])


def _latency(report: dict[str, Any]) -> str:
    lat = report.get("latency")
    if not lat:
        return ""
    caveats = any(e["assumptions"] for e in lat["devices"])
    heads = ["device", "at best", "Neural Engine", "GPU", "CPU", "key assumption"] + (
        ["other caveats"] if caveats else []
    )

    def row(e: dict[str, Any]) -> list[Any]:
        return [
            e["name"],
            headline_text(e),
            *(_bound_cell(e["units"].get(u)) for u in ("ne", "gpu", "cpu")),
            e["best"]["key_assumption"] if e["best"] else "",
            *(["; ".join(e["assumptions"])] if caveats else []),
        ]

    shown_ids = _shown_devices(report)
    shown, rest = _split(lat["devices"], lambda e: e["device"] in shown_ids)
    out = [
        f"<p>Each figure is a {escape(lat['note'])}: the model cannot run faster on that unit; real latency is"
        " higher. Each cell carries its own unit.</p>",
        table(heads, [row(e) for e in shown]),
    ]
    if rest:
        out.append(details(f"{len(rest)} other devices", table(heads, [row(e) for e in rest])))
    out.append(legend(["partial", "n/a"], {"-": "no figure for that unit in the catalog"}))
    out.append(
        "<p>Assumptions:</p><ul>" + "".join(f"<li>{escape(x)}</li>" for x in lat["assumptions"]) + "</ul>"
    )
    return "".join(out)


def render_html(report: dict[str, Any]) -> str:
    """The whole ``check`` report as one self-contained HTML page."""
    title = f"devicefit check: {report['model']['origin']}"
    meta = f"devicefit {report['tool']['version']}, report schema {report['schema_version']}, {report['created']}"
    warnings = "".join(f'<p class="warn">warning: {escape(w)}</p>' for w in report["warnings"])
    return page(
        title,
        meta,
        [
            section("verdicts", "Verdicts", _verdicts(report) + warnings),
            section("model", "Inputs and outputs", _model(report)),
            section("conversion", "Conversion", _conversion(report)),
            section("shapes", "Flexible shapes", _flexible(report)),
            section("numerics", "Numerics", _numerics(report)),
            section("size", "Size", _size(report.get("size"))),
            section("memory", "Memory", _memory(report)),
            section("neural-engine", "Neural Engine lint (prediction)", _neural_engine(report.get("ane"))),
            section("latency", "Latency lower bounds", _latency(report)),
        ],
    )


def write_html(path: str | os.PathLike[str], report: dict[str, Any]) -> None:
    """Write the HTML page atomically (callers check ``--force`` first)."""
    from devicefit.io import atomic_write_text

    atomic_write_text(path, render_html(report))
