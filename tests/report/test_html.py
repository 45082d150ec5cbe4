"""The check HTML page: self-contained, one look, decision-ready sections; renders in headless Chromium."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess

import pytest

from devicefit.report.charts import bar_chart, line_chart, nice_ticks
from devicefit.report.html import render_html, write_html
from devicefit.report.units import human_bytes

CHROMIUM = next(
    (
        p
        for p in map(
            shutil.which, ("chromium", "chromium-browser", "chromium-headless-shell", "google-chrome")
        )
        if p
    ),
    None,
)


def _section(page: str, ident: str) -> str:
    m = re.search(rf'<section id="{ident}">(.*?)</section>', page, re.S)
    assert m, f"no section {ident}"
    return m.group(1)


def test_page_is_self_contained_with_three_plots(demo_report):
    page = render_html(demo_report)
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page and "<link" not in page
    assert page.count("<svg") == 3
    for title in ("fp16 vs fp32 relative error", "live activation memory", "weight size by layer"):
        assert title in page
    peak = human_bytes(demo_report["memory"]["peak_activation_bytes"])
    assert f"peak {peak} at the top module (DigitsCNN)" in page  # the peak is marked with its PyTorch module
    assert "accuracy" in page


def test_sections_inputs_outputs_and_legends(demo_report):
    page = render_html(demo_report)
    for ident in (
        "verdicts",
        "model",
        "conversion",
        "numerics",
        "size",
        "memory",
        "neural-engine",
        "latency",
    ):
        _section(page, ident)
    io = _section(page, "model")
    assert "image" in io and "1x1x8x8" in io and "logits" in io and "fp32" in io
    verdicts = _section(page, "verdicts")
    assert 'class="legend"' in verdicts and "PASS</b>" in verdicts  # every verdict marker explained
    # the size chart names the PyTorch module first
    assert "conv1 (Conv2d) at" in _section(page, "size")


def test_device_tables_fold_all_but_the_shown_devices(demo_report):
    page = render_html(demo_report)
    memory = _section(page, "memory")
    shown, folded = memory.split("<details>", 1)
    assert len(demo_report["memory"]["fits"]) == 74
    assert shown.count("<tr>") - 1 == len(demo_report["latency"]["devices"])  # the default devices unfolded
    assert folded.count("<tr>") - 1 == 74 - len(demo_report["latency"]["devices"])
    assert "tight</b>" in memory  # the verdict words have a legend


def test_latency_cells_carry_their_own_unit(demo_report):
    latency = _section(render_html(demo_report), "latency")
    assert "Neural Engine ms" not in latency and "<th>Neural Engine</th>" in latency
    # demo bounds are sub-microsecond: each cell names its unit, never a tiny number in a ms column
    cells = re.findall(r"<td>(\d[\d.]*(?: \w+)?)</td>", latency)
    assert cells and all(c.endswith((" ns", " µs", " ms", " s")) for c in cells), cells
    assert not re.search(r"<td[^>]*>0\.000", latency)
    assert "partial</b>" in latency  # the partial marker is explained


def test_divergence_chart_has_x_ticks_and_a_labelled_threshold(demo_report):
    numerics = _section(render_html(demo_report), "numerics")
    chart = numerics[numerics.index("<svg") : numerics.index("</svg>")]
    x_ticks = re.findall(r'<text x="[\d.]+" y="\d+" text-anchor="middle" class="a">(\d+)</text>', chart)
    assert len(x_ticks) >= 2 and x_ticks[0] == "0"
    assert (
        "divergence tolerance 0.01" in chart and "divergence tolerance (0.01)" in chart
    )  # on chart + legend


def test_flexible_shapes_table_and_target_devices(flexible_report):
    page = render_html(flexible_report)
    shapes = _section(page, "shapes")
    assert "input=1x3x16x16" in shapes and "input=1x3x24x24" in shapes
    io = _section(page, "model")
    assert "1x3x16x16 | 1x3x24x24" in io  # accepted shapes of the flexible input
    latency = _section(page, "latency")
    assert "iPhone 12" in latency and "iPhone 8" in latency and "<details>" not in latency


def test_failed_conversion_has_no_empty_numerics(failed_report):
    page = render_html(failed_report)
    assert '<section id="numerics">' not in page and "<h2>Numerics</h2>" not in page
    conversion = _section(page, "conversion")
    assert "bessel_j1" in conversion and "models.py:" in conversion


def test_line_chart_marks_and_handles_edge_cases():
    svg = line_chart(
        [1e-5, 1e-3, 0.0, float("inf")], "t", "y", marker=1, marker_label="here", threshold=1e-2, log=True
    )
    plot = svg.split('<line x1="74" x2="90"')[0]  # before the legend
    assert plot.count("<circle") == 5 and 'class="inf"' in svg and "here" in svg and 'class="thr"' in svg
    assert "no data" in line_chart([], "t", "y")
    pinned = line_chart([1.0, 2.0, float("inf"), 1e308], "t", "y")
    assert pinned.count('r="3.5" class="inf"') == 2
    assert "1e+308" not in pinned  # the scale comes from the finite values
    assert len(re.findall(r'<rect[^>]*class="b"', bar_chart(["a", "b<c"], [1.0, 2.0], "t", "KiB"))) == 2
    assert "b&lt;c" in bar_chart(["b<c"], [1.0], "t", "KiB")


def test_long_bar_labels_are_shortened_not_clipped():
    label = "features.12.block.3.conv (Conv2d) at models/very/long/path/net.py:123 (op_15_cast_fp16)"
    svg = bar_chart([label, "b"], [1.0, 2.0], "t", "KiB")
    texts = re.findall(
        r'<text x="([\d.]+)"[^>]*text-anchor="end" class="a"><title>[^<]*</title>([^<]*)</text>', svg
    )
    x, shown = texts[0]
    assert shown.endswith("…") and len(shown) * 6.6 <= float(x)  # fits left of the bars
    assert f"<title>{label}</title>" in svg  # full text in the tooltip


def test_ticks_are_round_and_spaced():
    assert nice_ticks(0, 10) == [0, 2, 4, 6, 8, 10]
    assert nice_ticks(0.013, 0.071, 4) == pytest.approx([0.02, 0.04, 0.06])
    xs = [
        float(m)
        for m in re.findall(
            r'y2="\d+" class="ax"/><text x="([\d.]+)"', line_chart(list(range(500)), "t", "y")
        )
    ]
    assert len(xs) >= 3 and min(b - a for a, b in itertools.pairwise(xs)) > 6.6 * 5  # labels cannot overlap


def _chromium(page, tmp_path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr", "--v=0", "--window-size=1000,2400", *extra, page.as_uri(),
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.chromium
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed")
def test_renders_in_headless_chromium(demo_report, tmp_path):
    page = tmp_path / "report.html"
    write_html(page, demo_report)
    shot = tmp_path / "shot.png"
    proc = _chromium(page, tmp_path, f"--screenshot={shot}")
    assert shot.exists() and shot.stat().st_size > 10_000, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, "\n".join(console)
    # the DOM Chromium laid out has every section of the report
    dom = _chromium(page, tmp_path, "--dump-dom").stdout
    for ident in (
        "verdicts",
        "model",
        "conversion",
        "numerics",
        "size",
        "memory",
        "neural-engine",
        "latency",
    ):
        assert f'<section id="{ident}">' in dom


def test_flexible_shapes_cost_per_accepted_shape(flexible_report):
    """Issue 12: bounds of flexible shapes used 1 for the flexible axis; now one row per accepted shape."""
    rows = flexible_report["latency"]["per_shape"]
    assert [r["shapes"]["input"] for r in rows] == [[1, 3, 16, 16], [1, 3, 24, 24]]
    small, big = rows
    assert big["flops"] > 2 * small["flops"]  # 24x24 vs 16x16 pixels: 2.25x the conv work
    assert set(small["best"]) == {"iphone-12", "iphone-8"}
    a11 = small["best"]["iphone-8"]
    assert a11 is None or a11["unit"] != "ne"  # no Neural Engine bound on the A11 (and no GPU figures)
    shapes = _section(render_html(flexible_report), "shapes")
    assert "Cost at each accepted shape" in shapes and "at best on iPhone 12" in shapes
