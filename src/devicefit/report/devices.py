"""Device-intelligence sections of the reports: Neural Engine lint and roofline latency lower bounds.

Turns :class:`devicefit.analyze.ane_lint.LintReport` and :class:`devicefit.analyze.roofline.LatencyBounds`
objects into the plain dicts of the JSON report (``ane``, ``latency``; docs/report-schema.md), their
verdict and their ``summary`` keys for ``--fail-on``. One device's latency entry is built by
:func:`devicefit.analyze.roofline.latency_entry`, which ``devicefit profile --target`` uses too, so a bound
reads the same in both commands.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

# the latency entry is built in analyze (profile uses it too); re-exported here for the report's readers
from devicefit.analyze.roofline import (
    LOWER_BOUND_NOTE,
    UNIT_NAMES,
    key_assumption,
    latency_entry,
)
from devicefit.report.units import human_ms

__all__ = ["LOWER_BOUND_NOTE", "UNIT_NAMES", "key_assumption", "latency_entry"]

# A prediction, so its verdict never fails on op counts alone: only a whole-program bar or most of the
# compute falling back reads as "fail".
ANE_FAIL_FLOPS_SHARE = 0.5


def headline_text(entry: dict[str, Any]) -> str:
    """``"at best 0.42 ms on iPhone 12 (Neural Engine)"`` for a :func:`latency_entry` dict."""
    best = entry.get("best")
    if not best:
        return f"no bound for {entry['name']}: the catalog has no peak or bandwidth figure"
    if best["partial"]:
        # one roofline term is missing: the figure is far below a real bound, never quote it as "at best"
        return (
            f"no complete bound for {entry['name']}: partial {human_ms(best['at_best_ms'])} "
            f"({best['unit_name']}, one term only; not comparable with full bounds)"
        )
    return f"at best {human_ms(best['at_best_ms'])} on {entry['name']} ({best['unit_name']})"


def latency_section(bounds_list: list[Any], lint: Any = None) -> dict[str, Any]:
    """The report's ``latency`` section: one entry per device, with the shared assumptions once."""
    from devicefit.analyze.roofline import GENERAL_ASSUMPTIONS

    devices = [latency_entry(b) for b in bounds_list]
    assumptions = list(GENERAL_ASSUMPTIONS)
    if lint is not None and lint.summary.fallback_ops:
        # NOTE: the bound places every op on one unit; a fallback adds a transition the bound ignores.
        assumptions.append(
            f"every op on the quoted unit: the Neural Engine lint predicts {lint.summary.fallback_ops} of"
            f" {lint.summary.ops} ops fall back, so a Neural Engine bound is optimistic"
        )
    for entry in devices:
        entry["assumptions"] = [a for a in entry["assumptions"] if a not in GENERAL_ASSUMPTIONS]
    return {"note": LOWER_BOUND_NOTE, "assumptions": assumptions, "devices": devices}


def per_shape_section(program: Any, bounds_list: list[Any]) -> list[dict[str, Any]]:
    """FLOPs, bytes and the headline bound per device at each shape a flexible program accepts.

    Empty for a fixed-shape program. The shapes are :func:`devicefit.analyze.shapes.flexible_cases`: a range
    input's default and upper bound, each enumerated shape.
    """
    from devicefit.analyze.flops import resolve_function, total
    from devicefit.analyze.roofline import latency_bounds
    from devicefit.analyze.shapes import costs_at, flexible_cases

    resolved = resolve_function(program)
    rows: list[dict[str, Any]] = []
    for case in flexible_cases(resolved):
        costs = costs_at(resolved.function, case.shapes)
        if costs is None:  # type inference needs more than the input shapes: say so rather than guess
            rows.append(
                {"label": case.label, "shapes": case.shapes, "flops": None, "bytes_moved": None, "best": {}}
            )
            continue
        summed = total(costs)
        best = {}
        for bounds in bounds_list:
            entry = latency_entry(latency_bounds(costs, bounds.device))
            best[entry["device"]] = entry["best"]
        rows.append(
            {
                "label": case.label,
                "shapes": {k: list(v) for k, v in case.shapes.items()},
                "flops": summed.flops,
                "bytes_moved": summed.bytes_moved,
                "best": best,
            }
        )
    return rows


def latency_summary(section: dict[str, Any]) -> dict[str, Any]:
    """``latency.<device>.best_ms`` and ``latency.<device>.<unit>_ms`` (only bounds that exist)."""
    out: dict[str, Any] = {}
    for entry in section["devices"]:
        prefix = f"latency.{entry['device']}"
        if entry["best"] is not None:
            out[f"{prefix}.best_ms"] = entry["best"]["at_best_ms"]
        for unit, u in entry["units"].items():
            if u["at_best_ms"] is not None:
                out[f"{prefix}.{unit}_ms"] = u["at_best_ms"]
    return out


# ------------------------------------------------------------------ Neural Engine lint
def _reasons(lint: Any) -> list[dict[str, Any]]:
    """Every rule that fired, most ops first (program-level rules first of all: they bar the whole NE)."""
    total_flops = lint.summary.flops
    ops: Counter[str] = Counter()
    flops: Counter[str] = Counter()
    info: dict[str, Any] = {}
    fired_at: dict[str, list[Any]] = {}
    for op in lint.ops:
        for rule in {f.rule for f in op.findings}:
            ops[rule] += 1
            flops[rule] += op.flops
            fired_at.setdefault(rule, []).append(op)
    for rule, fired in fired_at.items():
        # NOTE: the reason shown is the costliest op's, the op a finding leads with (its place comes first)
        costliest = max(fired, key=lambda o: o.flops)
        info[rule] = next(f for f in costliest.findings if f.rule == rule)
    rows = [
        {
            "rule": f.rule,
            "title": f.title,
            "severity": f.severity,
            "scope": "program",
            "ops": lint.summary.ops,
            "flops_share": 1.0 if total_flops else 0.0,
            "reason": f.reason,
            "fix": f.fix,
            "source": f.source,
        }
        for f in lint.program
    ]
    for rule, count in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])):
        f = info[rule]
        rows.append(
            {
                "rule": rule,
                "title": f.title,
                "severity": f.severity,
                "scope": "op",
                # where it fires, the costliest ops first: what a finding leads with (PyTorch module and line)
                "where": list(dict.fromkeys(o.where for o in sorted(fired_at[rule], key=lambda o: -o.flops)))[
                    :5
                ],
                "ops": count,
                "flops_share": flops[rule] / total_flops if total_flops else 0.0,
                "reason": f.reason,
                "fix": f.fix,
                "source": f.source,
            }
        )
    return rows


def ane_section(lint: Any) -> dict[str, Any]:
    """The report's ``ane`` section from a :class:`~devicefit.analyze.ane_lint.LintReport`."""
    s = lint.summary
    return {
        "prediction": True,
        "disclaimer": lint.disclaimer,
        "function": lint.function,
        "ops": s.ops,
        "fallback_ops": s.fallback_ops,
        "maybe_ops": s.maybe_ops,
        "fallback_ops_share": s.fallback_op_share,
        "flops": s.flops,
        "fallback_flops": s.fallback_flops,
        "fallback_flops_share": s.fallback_flops_share,
        "transitions": s.transitions,
        "ne_barred_by": list(s.ne_barred_by),
        "reasons": _reasons(lint),
        "per_op": [
            {
                "index": o.index,
                "op": o.name,
                "op_type": o.op_type,
                "origin": o.origin.to_dict() if getattr(o, "origin", None) is not None else None,
                "where": getattr(o, "where", o.name),
                "verdict": o.verdict,
                "flops": o.flops,
                "findings": [{"rule": f.rule, "reason": f.reason} for f in o.findings],
            }
            for o in lint.ops
        ],
    }


def ane_summary(section: dict[str, Any]) -> dict[str, Any]:
    """The ``ane.*`` keys of the report's ``summary``."""
    return {
        "ane.fallback_ops_share": section["fallback_ops_share"],
        "ane.fallback_flops_share": section["fallback_flops_share"],
        "ane.fallback_ops": section["fallback_ops"],
        "ane.maybe_ops": section["maybe_ops"],
        "ane.transitions": section["transitions"],
        "ane.ne_barred": bool(section["ne_barred_by"]),
    }


def reason_line(r: dict[str, Any]) -> str:
    """One Neural Engine finding: where (PyTorch module and line) first, why, what to do, then the rule."""
    if r["scope"] == "program":
        return f"whole program: {r['reason']}; fix: {r['fix']} [{r['rule']}]"
    places = r.get("where") or []
    more = f" (+{r['ops'] - 1} more)" if r["ops"] > 1 else ""
    where = f"{places[0]}{more}: " if places else ""
    return f"{where}{r['reason']}; fix: {r['fix']} [{r['rule']}: {r['ops']} ops, {r['flops_share']:.0%} of FLOPs]"


def _costliest(section: dict[str, Any]) -> str:
    """``; most at lstm (LSTM) at net.py:12 (lstm_0): ... fix: ...``: the op rule costing most FLOPs."""
    ops = [r for r in section["reasons"] if r["scope"] == "op"]
    rules = [r for r in ops if r["severity"] == "fallback"] or ops
    if not rules:
        return ""
    top = max(rules, key=lambda r: (r["flops_share"], r["ops"]))
    return f"; most of it at {reason_line(top)}"


def ane_verdict(section: dict[str, Any]) -> tuple[str, str]:
    """(status, reason) for the ``neural_engine`` verdict; the reason says it is a prediction."""
    share, flops_share = section["fallback_ops_share"], section["fallback_flops_share"]
    counts = (
        f"{section['fallback_ops']} of {section['ops']} ops ({share:.0%}, {flops_share:.0%} of FLOPs) "
        f"likely fall back, {section['transitions']} transitions"
    )
    if section["ne_barred_by"]:
        return (
            "fail",
            f"predicted: the whole model is barred from the NE by {', '.join(section['ne_barred_by'])}",
        )
    if flops_share > ANE_FAIL_FLOPS_SHARE:
        return "fail", f"predicted: {counts}{_costliest(section)}"
    if section["fallback_ops"] or section["maybe_ops"]:
        maybe = f"; {section['maybe_ops']} may fall back" if section["maybe_ops"] else ""
        return "warn", f"predicted: {counts}{maybe}{_costliest(section)}"
    return "pass", f"predicted: all {section['ops']} ops likely on the Neural Engine"
