"""``devicefit profile`` results, rendered for the terminal (rich) and as the HTML page (same base and charts as
check and compress)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from devicefit.report import charts
from devicefit.report.devices import headline_text
from devicefit.report.page import Raw, legend, page, section, table
from devicefit.report.units import human_ms

if TYPE_CHECKING:
    from devicefit.profile.harness import ProfileReport

BOUND_CAPTION = (
    "roofline lines: lower bounds for the Apple device from its published peaks (at best), not measurements; "
    "the table is measured on this host"
)


def _s(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g} s"


def _ms(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else human_ms(v)


def _measured(report: ProfileReport) -> str:
    rows = []
    for p in report.profiles:
        lat = p.latency
        rows.append(
            [
                p.engine,
                p.compute_units,
                p.precision,
                _s(p.uncached_load_s),
                _s(p.cached_load_s),
                _ms(p.first_predict_ms),
                _ms(lat.p50.value if lat.p50 else None),
                _ms(lat.p90.value if lat.p90 else None),
                _ms(lat.p99.value if lat.p99 else None),
                "-" if p.peak_rss_mb is None else f"{p.peak_rss_mb:.4g} MB",
                p.error or "",
            ]
        )
    heads = ["engine", "units", "precision", "uncached load", "cached load", "first predict", "p50", "p90", "p99",
             "peak RSS", "note"]  # fmt: skip
    return table(heads, rows) + legend(
        [],
        {
            "uncached load": "first load, nothing cached",
            "cached load": "load with the prepared model cached",
            "p50 / p90 / p99": "latency percentiles of single predictions",
        },
    )


def _bounds(report: ProfileReport) -> str:
    if not report.device_bounds:
        return ""
    rows = []
    for e in report.device_bounds:
        best = e["best"]
        bound: Any = "no bound"
        if best:
            bound = (
                Raw(f"<i>partial</i> ({human_ms(best['at_best_ms'])})")
                if best["partial"]
                else headline_text(e)
            )
        rows.append(
            [e["name"], best["unit_name"] if best else "-", bound, best["key_assumption"] if best else ""]
        )
    note = report.device_bounds[0]["note"]
    return (
        f"<p>{note}: the model cannot run faster on that device and unit; the table above is measured on this"
        " host.</p>"
        + table(["device", "compute unit", "at best (lower bound)", "key assumption"], rows)
        + legend(["partial"])
    )


def render_html(report: ProfileReport) -> str:
    """The whole ``profile`` report as one self-contained HTML page."""
    plots = "".join(
        charts.histogram(p.latency.samples_ms, f"{p.engine} {p.compute_units} {p.precision}: latency")
        for p in report.profiles
        if p.latency.samples_ms
    )
    series = [
        (
            f"{p.engine} {p.compute_units} {p.precision}",
            [(t.level, t.per_second) for t in p.throughput if t.mode == "async"],
        )
        for p in report.profiles
    ]
    host = ", ".join(f"{k}={v}" for k, v in report.host.items())
    return page(
        f"devicefit profile: {report.model}",
        f"host: {host}",
        [
            section("measured", "Measured on this host", _measured(report)),
            section("bounds", "Device lower bounds (roofline, not measured)", _bounds(report)),
            section("latency", "Latency distribution", plots),
            section(
                "throughput",
                "Throughput",
                charts.series_chart(
                    series, "throughput vs requests in flight", "requests in flight", "requests / s"
                ),
            ),
        ],
    )


def _measured_table(report: ProfileReport) -> Any:
    """Metrics as rows, one column per engine configuration: readable at 80 columns."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(f"profile · {report.model}") + " [dim](measured on this host)[/]")
    table.add_column("metric")
    for p in report.profiles:
        table.add_column(escape(f"{p.engine} · {p.compute_units} · {p.precision}"), overflow="fold")
    rows: dict[str, list[str]] = {
        name: []
        for name in (
            "first load (new process)",
            "load, uncached (best of 3)",
            "load, cached (best of 3)",
            "first prediction",
            "latency p50 [95% CI]",
            "latency p90",
            "latency p99 [95% CI]",
            "best throughput",
            "peak RSS",
        )
    }
    for p in report.profiles:
        if p.error:
            for i, cells in enumerate(rows.values()):
                cells.append(f"[red]{escape(str(p.error))}[/red]" if i == 0 else "")
            continue
        lat = p.latency
        best = max((t for t in p.throughput), key=lambda t: t.per_second, default=None)
        rows["first load (new process)"].append(
            human_ms(p.first_load_s * 1e3) + " (imports included)" if p.first_load_s is not None else "-"
        )
        rows["load, uncached (best of 3)"].append(
            human_ms(p.uncached_load_s * 1e3) if p.uncached_load_s is not None else "-"
        )
        rows["load, cached (best of 3)"].append(
            human_ms(p.cached_load_s * 1e3) if p.cached_load_s is not None else "-"
        )
        rows["first prediction"].append(human_ms(p.first_predict_ms))
        rows["latency p50 [95% CI]"].append(_with_ci(lat.p50, human_ms))
        rows["latency p90"].append(human_ms(lat.p90.value) if lat.p90 else "-")
        rows["latency p99 [95% CI]"].append(_with_ci(lat.p99, human_ms))
        rows["best throughput"].append(
            f"{best.per_second:,.0f}/s ({best.mode} {best.level})" if best else "-"
        )
        rows["peak RSS"].append(f"{p.peak_rss_mb:.0f} MB")
    for name, cells in rows.items():
        table.add_row(name, *cells)
    return table


def _with_ci(q: Any, fmt: Any) -> str:
    if q is None:
        return "-"
    if q.ci_low is None or q.ci_high is None:
        return f"{fmt(q.value)} [CI needs more reps]"
    return f"{fmt(q.value)} [{fmt(q.ci_low)}, {fmt(q.ci_high)}]"


def _bound_line(entry: dict) -> str:
    """The device's roofline bound: a lower bound for the Apple device, not a measurement."""
    from rich.markup import escape

    best = entry["best"]
    if best is None:
        return f"roofline · {escape(entry['name'])}: no bound (the catalog lacks the figures)"
    partial = ", partial" if best["partial"] else ""
    return (
        f"roofline · {escape(entry['name'])} ({best['unit_name']}{partial}): at best "
        f"{human_ms(best['at_best_ms'])} (lower bound); {escape(best['key_assumption'])}"
    )


def profile_renderables(report: ProfileReport) -> list[Any]:
    """The ``profile`` report for the terminal: the measured table, then one roofline line per ``--target``.

    Returns:
        Rich renderables (a table, then markup strings), printed in order by the command.
    """
    from rich.markup import escape

    out: list[Any] = [_measured_table(report)]
    out.extend(_bound_line(entry) for entry in report.device_bounds)
    if report.device_bounds:
        out.append(f"[dim]{escape(BOUND_CAPTION)}[/]")
    return out
