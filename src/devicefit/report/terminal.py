"""The terminal summary: a verdict per area and the key numbers, as rich tables."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from devicefit.errors import first_line
from devicefit.report.devices import headline_text
from devicefit.report.units import human_bytes, human_ms, number

MB = 1024 * 1024
_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "skipped": "dim"}
VERDICT_LEGEND = {
    "pass": "met its bound",
    "warn": "worth a look, does not fail",
    "fail": "missed its bound (exit 1)",
    "skipped": "not run (an earlier stage failed)",
}


def _io_line(model: dict[str, Any]) -> str:
    """``inputs: image fp32 1x1x8x8 · outputs: logits fp16 1x10`` with the accepted shapes of flexible inputs."""
    from devicefit.report.page import flexible_text, shape_text

    parts = []
    for kind in ("inputs", "outputs"):
        feats = model.get(kind) or []
        if feats:
            items = []
            for f in feats:
                flex = flexible_text(f)
                extra = f" (accepts {flex})" if flex != "fixed" else ""
                items.append(f"{f['name']} {f.get('dtype')} {shape_text(f.get('shape'))}{extra}")
            parts.append(f"{kind}: " + ", ".join(items))
    return " · ".join(parts)


def _f(v: Any) -> str:
    return number(v)


def _metric(summary: dict[str, Any], key: str) -> str:
    # A key present with a null value was NaN (see the schema): say so rather than "-".
    return "nan" if key in summary and summary[key] is None else number(summary.get(key))


def render_terminal(report: dict[str, Any], console: Any) -> None:
    """Print the summary of ``report`` on a ``rich.console.Console``."""
    from rich.table import Table

    verdicts = Table(title=f"devicefit check · {report['model']['origin']}")
    for col in ("area", "verdict", "why"):
        verdicts.add_column(col)
    for area, v in report["verdicts"].items():
        style = _STYLE.get(v["status"], "")
        verdicts.add_row(area.replace("_", " "), f"[{style}]{v['status'].upper()}[/]", escape(v["reason"]))
    console.print(verdicts)
    used = [
        k
        for k in ("pass", "warn", "fail", "skipped")
        if any(v["status"] == k for v in report["verdicts"].values())
    ]
    console.print("[dim]" + " · ".join(f"{k.upper()}: {VERDICT_LEGEND[k]}" for k in used) + "[/]")
    io = _io_line(report.get("model") or {})
    if io:
        console.print(io, markup=False, highlight=False)
    if report.get("convert") and report["convert"].get("unsupported"):
        _unsupported(report["convert"], console)
    elif report.get("convert") and report["convert"].get("frontends"):
        parts = []
        for f in report["convert"]["frontends"]:
            if f["status"] == "converted":
                parts.append(f"{f['name']} converted ({f['seconds']:.1f} s)")
            elif f["status"] == "failed":
                parts.append(f"{f['name']} failed ({first_line(f['error'] or '')[:80]})")
            else:
                parts.append(f"{f['name']} not tried (--frontends all tries it)")
        console.print("frontends: " + escape("; ".join(parts)))
    num = report.get("numerics")
    if num:
        data = report.get("data")
        on = f" on {data['origin']}, {data['samples']} samples" if data else ""
        t = Table(title=escape(f"numerics (worst over outputs){on}"))
        s = report["summary"]
        # integer / boolean outputs (ids, masks) are judged by exact match alone: their column when any has one
        exact = any(f"{key}.exact_match" in s for key in ("fp32", "fp16"))
        columns = (
            "comparison",
            "max rel err",
            "SNR dB",
            "cosine",
            "top-1",
            "top-5",
            "exact match",
            "accuracy",
        )
        for col in columns if exact else tuple(c for c in columns if c != "exact match"):
            t.add_column(col)
        for key in ("fp32", "fp16"):
            comp = num.get(key)
            if not comp:
                continue
            t.add_row(
                f"{key} vs {comp['reference']}",
                _metric(s, f"{key}.max_rel_error"),
                _metric(s, f"{key}.snr_db"),
                _metric(s, f"{key}.cosine_similarity"),
                _metric(s, f"{key}.top1_agreement"),
                _metric(s, f"{key}.top5_agreement"),
                *([_metric(s, f"{key}.exact_match")] if exact else []),
                _f(s.get(f"{key}.accuracy"))
                + (
                    f" (torch {_f(s.get('reference.accuracy'))})"
                    if s.get(f"{key}.accuracy") is not None
                    else ""
                ),
            )
        console.print(t)
        _divergence(
            num.get("divergence") or {}, report["verdicts"].get("numerics", {}).get("status"), console
        )
    size, mem = report.get("size"), report.get("memory")
    if size and mem:
        pkg = size["package_bytes"]
        console.print(
            f"size: {size['parameters']:,} parameters, weights {human_bytes(size['weight_bytes'])}"
            f" (fp16 {human_bytes(size['bytes_at']['fp16'])}, int8 {human_bytes(size['bytes_at']['int8'])},"
            f" 4-bit {human_bytes(size['bytes_at']['4bit'])})"
            + (f", package {human_bytes(pkg)}" if pkg is not None else "")
        )
        console.print(
            f"memory: peak activations {human_bytes(mem['peak_activation_bytes'])} while running"
            f" {mem.get('peak_where') or mem['peak_op']}; working set {human_bytes(mem['working_set_bytes'])}",
            markup=False,
            highlight=False,
        )
        fits = mem["fits"]
        too_big = [f["name"] for f in fits if f["fits"] is False]
        tight = [f["name"] for f in fits if f["verdict"] == "tight"]
        ok = sum(1 for f in fits if f["fits"])
        console.print(
            f"device fit: fits {ok} of {len(fits)} devices' app memory budgets"
            + (f"; too big for {', '.join(too_big[:6])}" if too_big else "")
            + (f"; tight on {', '.join(tight[:6])}" if tight else "")
        )
    if report.get("ane"):
        _neural_engine(report["ane"], console)
    if report.get("latency"):
        _latency(report["latency"], console)
    for w in report.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}")


def _divergence(d: dict[str, Any], numerics: str | None, console: Any) -> None:
    """fp16 findings, each leading with where (PyTorch module and line, then the MIL op) and saying what to do:
    with the outputs within tolerance there is nothing to do; when they fail, the numerics verdict has the fix."""

    def where(o: dict[str, Any]) -> str:
        return f"{escape(o.get('where') or o['op'])} {escape('[' + o['op_type'] + ']')}"

    failed = numerics == "fail"
    if d.get("first_divergent"):
        fd = d["first_divergent"]
        todo = (
            "start there (the numerics verdict has the fix)"
            if failed
            else "the outputs stay within tolerance"
        )
        console.print(
            f"[bold]{where(fd)}[/]: fp16 first diverges here, relative error {number(fd['rel_error'])}; {todo}"
        )
    for o in d.get("overflow", []):
        console.print(
            f"{where(o)}: [red]fp16 overflow[/], {o['overflow'] + o['nonfinite']} values beyond fp16's ±65504; keep "
            "it in fp32 (the numerics verdict's --fp32-ops fix) or scale down what it computes"
        )
    for o in d.get("underflow", [])[:3]:
        todo = (
            "if the failure starts here, keep it in fp32 (the numerics verdict's fix)"
            if failed
            else "harmless here: the outputs stay within tolerance"
        )
        console.print(
            f"{where(o)}: [yellow]fp16 underflow[/], {o['underflow']} values flushed to zero; {todo}"
        )


def _neural_engine(ane: dict[str, Any], console: Any) -> None:
    console.print(
        f"neural engine (predicted, not measured): {ane['fallback_ops']} of {ane['ops']} ops"
        f" ({ane['fallback_ops_share']:.0%}) and {ane['fallback_flops_share']:.0%} of FLOPs likely fall back,"
        f" {ane['maybe_ops']} may fall back, {ane['transitions']} NE <-> CPU/GPU transitions"
        + (f"; NE barred by {', '.join(ane['ne_barred_by'])}" if ane["ne_barred_by"] else ""),
        highlight=False,
        markup=False,
    )
    from devicefit.report.devices import reason_line

    for r in ane["reasons"][:3]:
        console.print(f"  {reason_line(r)}", highlight=False, markup=False)
    console.print(f"[dim]{ane['disclaimer']}[/]")


def _unsupported(convert: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    t = Table(title="ops coremltools cannot convert (all of them, from one scan)")
    # the source first (as every finding leads with it), then the op it holds
    for col in ("where", "module", "op", "count", "what to do"):
        t.add_column(col, overflow="fold")
    for u in convert["unsupported"]:
        t.add_row(
            *(escape(str(u.get(k) or "")) for k in ("location", "module_path", "op")),
            str(u.get("count", 1)),
            escape(str(u.get("hint") or "")),
        )
    console.print(t)
    if convert.get("error"):
        frontends = convert["error"].split(" | ")[1:]  # "name: failed (reason)" per frontend tried
        for line in frontends:
            console.print(f"[dim]{escape(line)}[/]")


def _unit_ms(unit: dict[str, Any] | None) -> str:
    if unit is None:
        return "n/a"
    if unit["at_best_ms"] is None:
        return "-"
    return human_ms(unit["at_best_ms"]) if unit["complete"] else f"({human_ms(unit['at_best_ms'])})*"


def _latency(latency: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    devices = latency["devices"]
    for entry in devices if len(devices) <= 3 else devices[:1]:
        console.print(f"latency: {escape(headline_text(entry))}")
    t = Table(title="latency lower bounds (roofline from published peaks: real latency is higher)")
    for col in ("device", "at best", "Neural Engine", "GPU", "CPU", "note"):
        t.add_column(col, overflow="fold")
    notes: list[str] = []  # each distinct key assumption once, referenced by number
    for entry in latency["devices"]:
        cells = [_unit_ms(entry["units"].get(u)) for u in ("ne", "gpu", "cpu")]
        best = entry["best"]
        if best is None:
            t.add_row(escape(entry["name"]), "no bound", *cells, "")
            continue
        if best["key_assumption"] not in notes:
            notes.append(best["key_assumption"])
        short = {"ne": "NE", "gpu": "GPU", "cpu": "CPU"}.get(best["unit"], best["unit_name"])
        at_best = (
            f"({human_ms(best['at_best_ms'])} {short})*"
            if best["partial"]
            else f"{human_ms(best['at_best_ms'])} {short}"
        )
        t.add_row(escape(entry["name"]), at_best, *cells, f"[{notes.index(best['key_assumption']) + 1}]")
    console.print(t)
    for i, note in enumerate(notes, 1):
        console.print(f"[dim][{i}] {escape(note)}[/]")
    console.print(
        "[dim](...)* partial bound: the catalog lacks a figure, so one term is dropped; far below a real bound"
        " and not comparable with full ones · n/a: Core ML cannot use that unit on the device[/]"
    )
