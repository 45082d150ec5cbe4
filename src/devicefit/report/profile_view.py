"""``devicefit profile`` results, rendered as the HTML page (same base and charts as check and compress)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from devicefit.report import charts
from devicefit.report.devices import headline_text
from devicefit.report.page import Raw, legend, page, section, table
from devicefit.report.units import human_ms

if TYPE_CHECKING:
    from devicefit.profile.harness import ProfileReport


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
