"""``devicefit compress`` results, rendered: rich tables for the terminal and the HTML page.

Takes the :class:`devicefit.compress.search.SearchResult` data and renders it with the shared page base and
chart module, so compress reads like check and profile.
"""

from __future__ import annotations

import math
from html import escape
from typing import TYPE_CHECKING, Any

from devicefit.report import charts, scatter
from devicefit.report.page import details, legend, page, section, status, table
from devicefit.report.units import human_bytes

if TYPE_CHECKING:
    from devicefit.compress.search import SearchResult


def _fmt(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.6g}"


def _layer_name(layer: Any) -> str:
    """The PyTorch module first when the layer carries an origin, else the MIL op text."""
    return str(layer.where)


def _on(result: SearchResult) -> str:
    """'; on 32 of 150 calibration samples' when the sensitivity ran on a subset (empty otherwise)."""
    n = result.sensitivity.samples
    return "" if n is None else f"; on {n} of {result.calibration_samples} calibration samples"


def sensitivity_table(result: SearchResult) -> Any:
    """Per-layer sensitivity: the metric with only that weight compressed at each choice."""
    from rich.markup import escape as rich_escape
    from rich.table import Table

    sens = result.sensitivity
    table_ = Table(
        title=f"per-layer sensitivity ({sens.metric_name}; fp16 base {_fmt(sens.base_metric)}{_on(result)})"
    )
    table_.add_column("layer (PyTorch module, then MIL op)", overflow="fold", ratio=3)
    table_.add_column("elements", justify="right", no_wrap=True)
    for c in sens.choices[:-1]:
        table_.add_column(c, justify="right", no_wrap=True)
    table_.add_column("chosen", no_wrap=True)
    for layer in sens.layers:
        table_.add_row(
            rich_escape(_layer_name(layer)),
            f"{layer.numel:,}",
            *(_fmt(layer.metric.get(c)) for c in sens.choices[:-1]),
            result.chosen.assignment.get(layer.weight, "fp16"),
        )
    return table_


def result_rows(result: SearchResult) -> list[tuple[str, str]]:
    """The summary as (what, value) pairs, shared by the terminal table and the page."""
    metric = result.budget.metric
    return [
        (
            "original (as given)",
            f"{human_bytes(result.original_bytes)}; {metric} {_fmt(result.original_metric)}",
        ),
        ("fp16", human_bytes(result.base_bytes)),
        (
            "chosen",
            f"{human_bytes(result.chosen.bytes)} ({result.base_bytes / max(result.chosen.bytes, 1):.2f}x vs fp16)",
        ),
        (f"chosen {metric} (search)", _fmt(result.chosen.metric)),
        (f"chosen {metric} (re-measured)", _fmt(result.verified_metric)),
        ("bound", _fmt(result.threshold)),
        ("budget met (search, calibration)", "yes" if result.met else "NO"),
        ("budget met (re-measured)", _yes_no(result.verified_met)),
        ("budget met (held-out)", _yes_no(result.heldout_met)),
        ("verdict", "PASS" if result.generalizes else "FAIL"),
        ("candidates evaluated", str(len(result.candidates))),
    ]


def _yes_no(value: bool | None) -> str:
    return "not measured" if value is None else "yes" if value else "NO"


def verdict_line(result: Any) -> str | None:
    """Why the verdict is FAIL, one line (None when it passes): what missed the budget, and where."""
    metric, need = result.budget.metric, distinct
    if not result.met:
        return (
            f"budget {result.budget.text} cannot be met: the best candidate found reaches "
            f"{need(result.chosen.metric, result.threshold)}; it is the one written. Relax the budget, or add "
            "bits (--bits) or keep more layers in fp16 (--min-elements)"
        )
    if result.verified_met is False:
        return (
            f"the built plan, re-measured, misses budget {result.budget.text}: {metric} "
            f"{need(result.verified_metric, result.threshold)} on {result.calibration_samples} calibration samples"
        )
    if result.heldout_met is False:
        return (
            f"the plan misses budget {result.budget.text} on {result.heldout_samples} held-out samples the search "
            f"never saw: {metric} {need(result.heldout_metric, result.threshold)}; it overfits the calibration "
            "samples: pass more --samples (or real --data), or a stricter budget"
        )
    return None


def result_table(result: SearchResult, origin: str) -> Any:
    """The summary: sizes, metric, verdict."""
    from rich.markup import escape as rich_escape
    from rich.table import Table

    table_ = Table(title=rich_escape(f"compress {origin} under {result.budget.text}"))
    table_.add_column("")
    table_.add_column("value", justify="right", overflow="fold")
    for k, v in result_rows(result):
        table_.add_row(rich_escape(k), rich_escape(v))
    return table_


def pareto_svg(result: SearchResult) -> str:
    """Every candidate (bytes vs metric), the Pareto front, the chosen one and the labelled bound."""
    metric = result.budget.metric
    # ticks are round in the unit shown (KiB or MiB), not in bytes
    biggest = max((c.bytes for c in result.candidates), default=0)
    scale, unit = (1024 * 1024, "MiB") if biggest >= 1024 * 1024 else (1024, "KiB")
    points = [
        scatter.Point(
            c.bytes / scale,
            c.metric,
            c.passed,
            f"{human_bytes(c.bytes)}, {metric} {_fmt(c.metric)}",
            chosen=c is result.chosen,
        )
        for c in result.candidates
    ]
    front = [(c.bytes / scale, c.metric) for c in result.front if math.isfinite(c.metric)]
    return scatter.scatter_chart(
        points,
        f"size vs {metric}: every candidate",
        f"weight size ({unit})",
        metric,
        front=front,
        threshold=result.threshold if math.isfinite(result.threshold) else None,
        threshold_label="budget bound",
    )


def sensitivity_svg(result: SearchResult, top: int = 25) -> str:
    """Relative output noise per layer with only that weight at the smallest choice, largest first."""
    sens = result.sensitivity
    choice = sens.choices[0]
    layers = sens.most_sensitive(choice)[:top]
    values = [max(layer.noise.get(choice, 0.0), 0.0) for layer in layers]
    values = [
        v if math.isfinite(v) else max((x for x in values if math.isfinite(x)), default=1.0) for v in values
    ]
    return charts.bar_chart(
        [_layer_name(layer) for layer in layers],
        values,
        f"relative output noise with only this weight at {choice} (most sensitive {len(layers)}{_on(result)})",
        "",
    )


def html_report(result: SearchResult, origin: str) -> str:
    """The ``compress`` page: summary, Pareto plot, sensitivity plot, plan and how to re-apply it."""
    d = result.to_dict()
    verdict = "pass" if result.generalizes else "fail"
    summary = table(
        ["", "value"],
        [[k, status(v) if k == "verdict" else v] for k, v in result_rows(result)],
    ) + legend(["PASS", "FAIL"])
    why = verdict_line(result)
    if why is not None:
        summary += f"<p>{escape(why)}</p>"
    if result.repair is not None:
        r = result.repair
        summary += (
            f"<p>fp16 repair: keep {len(r.fp32_ops)} op(s) in fp32 ({escape('; '.join(r.where()))}); metric "
            f"{_fmt(r.fp16_metric)} -> {_fmt(r.repaired_metric)} (bound {_fmt(r.threshold)}).</p>"
        )
    run_rows = [[f"{stage}", f"{seconds:.1f} s"] for stage, seconds in (result.timings or {}).items()]
    batching = getattr(result, "batching", None)
    how = table(["stage", "time"], run_rows) if run_rows else ""
    if batching is not None:
        runs = "one run per sample" if batching.mode == "per-sample" else f"{batching.chunk} samples per run"
        how += (
            f"<p>Candidates evaluated: <b>{escape(batching.mode)}</b> ({runs}): {escape(batching.reason)}</p>"
        )
    # the PyTorch module first; the weight's MIL name (what the YAML plan names) after it
    where = {layer.weight: layer.where for layer in result.sensitivity.layers}
    plan_rows = [[where.get(w, w), w, label] for w, label in d["plan"].items()]
    plan = (
        table(["layer (PyTorch module, then MIL op)", "weight", "compression"], plan_rows)
        if plan_rows
        else "<p>no weight is compressed</p>"
    )
    return page(
        f"devicefit compress: {origin}",
        f"budget {result.budget.text} (bound {_fmt(result.threshold)}): {verdict.upper()}",
        [
            section("summary", "Summary", summary),
            section("pareto", f"Size vs {result.budget.metric}", pareto_svg(result)),
            section("sensitivity", "Per-layer sensitivity", sensitivity_svg(result)),
            section("plan", "Plan", details(f"{len(plan_rows)} weights", plan, open_=len(plan_rows) <= 30)),
            section("search", "How the search ran", how or "<p>not recorded</p>"),
            section("reapply", "Re-apply with coremltools", f"<pre>{escape(_yaml_or_note(result))}</pre>"),
        ],
    )


def _yaml_or_note(result: SearchResult) -> str:
    try:
        return result.plan_yaml()
    except Exception as e:  # a plan YAML cannot express every plan (e.g. mixed families)
        return f"(no single YAML: {e})"


NO_PROVENANCE = (
    "layers are named by their MIL ops: this package carries no PyTorch provenance; compress the PyTorch "
    "model itself (devicefit compress model.py:make_model ...) or a package devicefit converted, to see "
    "modules and source lines"
)


def summary_renderables(result: Any, origin: str) -> list[Any]:
    """The compress command's terminal output: sensitivity and result tables, then one line per finding."""
    from rich.markup import escape as rich_escape

    lines: list[Any] = [sensitivity_table(result)]
    if result.sensitivity.layers and all(layer.origin is None for layer in result.sensitivity.layers):
        lines.append(NO_PROVENANCE)
    lines.append(result_table(result, origin))
    why = verdict_line(result)
    if why is not None:
        lines.append(f"[red]FAIL[/red]: {rich_escape(why)}")
    lines.append(generalisation_line(result))
    if result.timings:
        lines.append("time per stage: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()))
    batching = getattr(result, "batching", None)
    if batching is not None:
        runs = "one run per sample" if batching.mode == "per-sample" else f"{batching.chunk} samples per run"
        lines.append(f"evaluation: {batching.mode} ({runs}): {batching.reason}")
    if result.repair is not None:
        lines.append(
            f"fp16 repair: keep in fp32 {'; '.join(result.repair.where())} -> "
            f"{result.repair.coremltools_snippet()}"
        )
    return lines


def generalisation_line(result: Any) -> str:
    """Calibration (with its margin) and held-out figures of the chosen plan, one line."""
    metric = result.budget.metric
    cal = (
        f"{metric} {result.verified_metric:.6g} on {result.calibration_samples} calibration samples "
        f"(safety margin {result.chosen.margin:.3g})"
    )
    if result.heldout_metric is None:
        return f"{cal}; no held-out samples (--holdout 0 or too few samples): not verified on fresh data"
    verdict = "meets" if result.heldout_met else "[red]misses[/red]"
    return (
        f"{cal}; {metric} {distinct(result.heldout_metric, result.threshold)} on {result.heldout_samples} "
        f"held-out samples: {verdict} the budget"
    )


def distinct(value: float, threshold: float) -> str:
    """``0.99896 (needs >= 0.999)`` with as many digits as it takes for the two numbers to differ."""
    for digits in range(4, 17):
        a, b = f"{value:.{digits}g}", f"{threshold:.{digits}g}"
        if a != b:
            return f"{a} (needs >= {b})"
    return f"{value!r} (needs >= {threshold!r})"
