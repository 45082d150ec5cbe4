"""The device sections of the check page: Neural Engine lint, latency lower bounds, cost per accepted shape.

Split from :mod:`devicefit.report.html` (same page base and charts); built from the JSON report dict only.
"""

from __future__ import annotations

from html import escape
from typing import Any

from devicefit.report import charts
from devicefit.report.devices import headline_text
from devicefit.report.page import Raw, details, legend, shape_text, table
from devicefit.report.units import human_ms

MAX_LINT_ROWS = 200


def shown_devices(report: dict[str, Any]) -> set[str]:
    """The devices shown unfolded: the ``--target`` ones, else those the latency section covers."""
    chosen = set(report["options"].get("devices") or [])
    if not chosen and report.get("latency"):
        chosen = {e["device"] for e in report["latency"]["devices"]}
    return chosen


def split_rows(rows: list[Any], keep: Any) -> tuple[list[Any], list[Any]]:
    return [r for r in rows if keep(r)], [r for r in rows if not keep(r)]


def per_shape(report: dict[str, Any]) -> str:
    """FLOPs and the best bound per shown device at each accepted shape."""
    rows = (report.get("latency") or {}).get("per_shape") or []
    if not rows:
        return ""
    names = {e["device"]: e["name"] for e in report["latency"]["devices"]}
    shown = [d for d in names if d in shown_devices(report)] or list(names)
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


def _rule_where(r: dict[str, Any]) -> str:
    if r["scope"] == "program":
        return "whole program"
    places = r.get("where") or []
    more = f" (+{r['ops'] - 1} more)" if r["ops"] > 1 and places else ""
    return f"{places[0]}{more}" if places else ""


def neural_engine(a: dict[str, Any] | None) -> str:
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
        # where first (PyTorch module and line), then why and what to do; the rule's id and source follow
        rows = [
            [
                _rule_where(r),
                r["reason"],
                r["fix"],
                r["rule"],
                r["title"],
                r["severity"],
                "whole program" if r["scope"] == "program" else r["ops"],
                f"{r['flops_share']:.0%}",
                r["source"],
            ]
            for r in a["reasons"]
        ]
        heads = ["where (PyTorch module, then MIL op)", "why", "fix", "rule", "constraint", "severity", "ops",
                 "FLOPs", "source"]  # fmt: skip
        out.append(table(heads, rows))
    flagged = [o for o in a["per_op"] if o["findings"]]
    if flagged:
        rows = [
            [
                o["index"],
                str(o.get("where") or o["op"]),
                o["op_type"],
                o["verdict"],
                "; ".join(f["reason"] for f in o["findings"]),
            ]
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


def bound_cell(u: dict[str, Any] | None) -> Any:
    if u is None:
        return "n/a"
    if u["at_best_ms"] is None:
        return "-"
    if not u["complete"]:
        return Raw(f"<i>partial</i> ({escape(human_ms(u['at_best_ms']))})")
    return human_ms(u["at_best_ms"])


def latency(report: dict[str, Any]) -> str:
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
            *(bound_cell(e["units"].get(u)) for u in ("ne", "gpu", "cpu")),
            e["best"]["key_assumption"] if e["best"] else "",
            *(["; ".join(e["assumptions"])] if caveats else []),
        ]

    shown_ids = shown_devices(report)
    shown, rest = split_rows(lat["devices"], lambda e: e["device"] in shown_ids)
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
