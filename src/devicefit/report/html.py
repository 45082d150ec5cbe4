"""The self-contained HTML page of ``devicefit check``: one file, inline CSS and SVG, no scripts, no network.

Built from the JSON report dict only (the command hands data, never markup), with the shared page base
(:mod:`devicefit.report.page`) and the one chart module (:mod:`devicefit.report.charts`).
"""

from __future__ import annotations

import os
from html import escape
from typing import Any

from devicefit.report import charts
from devicefit.report.device_views import latency, neural_engine, per_shape, shown_devices, split_rows
from devicefit.report.page import details, io_table, legend, page, section, shape_text, status, table
from devicefit.report.units import human_bytes, number

MB = 1024 * 1024


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


def _flexible(report: dict[str, Any]) -> str:
    flex = (report.get("extras") or {}).get("flexible")
    if not flex:
        return per_shape(report)
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
    out.append(per_shape(report))
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
        f"{' (approximate: dynamic shapes)' if m['approximate'] else ''}. Activations are counted as Core ML "
        "holds them on the device, at the package's types (2 bytes per fp16 value); PyTorch, and this check, "
        "hold them as float32 (twice that for an fp16 package).</p>"
    )
    heads = ["device", "app budget (MB)", "used", "verdict", "how the budget is derived"]
    shown_ids = shown_devices(report)
    shown, rest = split_rows(m["fits"], lambda f: f["device"] in shown_ids)
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
            section("neural-engine", "Neural Engine lint (prediction)", neural_engine(report.get("ane"))),
            section("latency", "Latency lower bounds", latency(report)),
        ],
    )


def write_html(path: str | os.PathLike[str], report: dict[str, Any]) -> None:
    """Write the HTML page atomically (callers check ``--force`` first)."""
    from devicefit.io import atomic_write_text

    atomic_write_text(path, render_html(report))
