"""The HTML report: self-contained, three inline plots, renders in headless Chromium without errors."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from devicefit.report.html import render_html, write_html
from devicefit.report.svg import bar_chart, line_chart

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_page_is_self_contained_with_three_plots(demo_report):
    page = render_html(demo_report)
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page and "<link" not in page
    assert page.count("<svg") == 3
    for title in ("fp16 vs fp32 relative error", "live activation memory", "weight size by layer"):
        assert title in page
    peak = demo_report["memory"]["peak_op"]
    assert f"at {peak}" in page  # the peak is marked on the memory plot
    assert "accuracy" in page


def test_page_has_lint_and_latency_tables(demo_report):
    page = render_html(demo_report)
    assert "<h2>Neural Engine lint (prediction)</h2>" in page and "not a measurement" in page
    assert "No op matches a published Neural Engine constraint" in page  # the demo is all NE-friendly
    latency = page.split("<h2>Latency lower bounds</h2>", 1)[1]
    assert latency.count("<tr>") == 1 + len(demo_report["latency"]["devices"])
    assert "at best" in latency and "iPhone 12" in latency and "key assumption" in latency


def test_line_chart_marks_and_handles_edge_cases():
    svg = line_chart(
        [1e-5, 1e-3, 0.0, float("inf")], "t", "y", marker=1, marker_label="here", threshold=1e-2, log=True
    )
    assert svg.count("<circle") == 5 and 'class="inf"' in svg and "here" in svg and 'class="thr"' in svg
    assert "no data" in line_chart([], "t", "y")
    pinned = line_chart([1.0, 2.0, float("inf"), 1e308], "t", "y")
    assert pinned.count('class="inf"') == 2
    assert "1e+308" not in pinned  # the scale comes from the finite values
    assert len(re.findall(r'<rect[^>]*class="b"', bar_chart(["a", "b<c"], [1.0, 2.0], "t", "KiB"))) == 2
    assert "b&lt;c" in bar_chart(["b<c"], [1.0], "t", "KiB")


@pytest.mark.chromium
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed")
def test_renders_in_headless_chromium(demo_report, tmp_path):
    page = tmp_path / "report.html"
    write_html(page, demo_report)
    shot = tmp_path / "shot.png"
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr", "--v=0", "--window-size=1000,2400", f"--screenshot={shot}", page.as_uri(),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, "\n".join(console)
