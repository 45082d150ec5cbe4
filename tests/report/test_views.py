"""compress and profile pages: the same page base, charts and legends as check (data in, markup out)."""

from __future__ import annotations

import re

import numpy as np

from devicefit.compress.budget import parse_budget
from devicefit.compress.configs import Fp16Config, PalettizeConfig
from devicefit.compress.search import Candidate, SearchResult
from devicefit.compress.sensitivity import LayerSensitivity, Sensitivity
from devicefit.profile.harness import EngineProfile, ProfileReport, ThroughputPoint
from devicefit.profile.stats import LatencyStats
from devicefit.report import compress_view, page, profile_view


def _search_result(met: bool = True) -> SearchResult:
    layers = [
        LayerSensitivity(
            "conv_w", "conv_0 (conv)", 1000, {"pal4": 600, "fp16": 2000}, {"pal4": 0.9}, {"pal4": 1e-3}
        ),
        LayerSensitivity(
            "fc_w", "linear_0 (linear)", 5000, {"pal4": 2600, "fp16": 10000}, {"pal4": 0.95}, {"pal4": 1e-5}
        ),
    ]
    cands = [
        Candidate({"conv_w": "pal4", "fc_w": "pal4"}, 3200, 0.90, 1e-3, False),
        Candidate({"conv_w": "fp16", "fc_w": "pal4"}, 4600, 0.96, 1e-5, True),
        Candidate({"conv_w": "fp16", "fc_w": "fp16"}, 12000, 0.97, 0.0, True),
    ]
    return SearchResult(
        budget=parse_budget("accuracy>=-2%"),
        threshold=0.95,
        met=met,
        chosen=cands[1],
        original_metric=0.97,
        original_bytes=24000,
        base_bytes=12000,
        sensitivity=Sensitivity("accuracy", ["pal4", "fp16"], 0.97, layers),
        candidates=cands,
        plan={},
        choices={"pal4": PalettizeConfig(nbits=4), "fp16": Fp16Config()},
        repair=None,
        verified_metric=0.96,
    )


def _profile_report() -> ProfileReport:
    samples = list(np.random.default_rng(0).exponential(0.2, 200) + 0.05)
    prof = EngineProfile(
        "interp",
        "cpu",
        "fp32",
        uncached_load_s=0.5,
        cached_load_s=0.01,
        first_predict_ms=0.3,
        latency=LatencyStats.from_samples(samples),
        throughput=[ThroughputPoint("async", 1, 10, 0.5), ThroughputPoint("async", 2, 10, 0.3)],
        peak_rss_mb=120.0,
    )
    bound = {
        "device": "iphone-15-pro", "name": "iPhone 15 Pro", "note": "lower bound (roofline), not a measurement",
        "best": {"unit": "ne", "unit_name": "Neural Engine", "at_best_ms": 4.74e-6, "partial": True,
                 "key_assumption": "partial: no memory bandwidth figure"},
    }  # fmt: skip
    return ProfileReport("net.mlpackage", {"system": "Linux"}, [prof], [bound])


def test_compress_page_shares_the_look_and_labels_its_charts():
    p = compress_view.html_report(_search_result(), "net.py")
    assert page.CSS in p  # the stylesheet of every devicefit page (check renders through page.page too)
    for ident in ("summary", "pareto", "sensitivity", "plan", "reapply"):
        assert f'<section id="{ident}">' in p
    pareto = p[p.index('<section id="pareto">') :]
    assert "budget bound 0.95" in pareto and "meets the budget" in pareto and "Pareto front" in pareto
    assert 'class="legend"' in p and "PASS</b>" in p


def test_compress_terminal_tables_fit_80_columns():
    from rich.console import Console

    console = Console(width=80, record=True)
    console.print(compress_view.sensitivity_table(_search_result()))
    console.print(compress_view.result_table(_search_result(), "net.py"))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "conv_0 (conv)" in text  # a layer name is wrapped by row, never split mid-word here


def test_profile_page_units_and_partial_bound():
    p = profile_view.render_html(_profile_report())
    assert page.CSS in p
    for ident in ("measured", "bounds", "latency", "throughput"):
        assert f'<section id="{ident}">' in p
    bounds = p[p.index('<section id="bounds">') : p.index('<section id="latency">')]
    assert "<i>partial</i> (4.74 ns)" in bounds and "partial</b>" in bounds  # marked and explained
    latency = p[p.index('<section id="latency">') :]
    assert "p50" in latency and "p99" in latency and "latency (ms)" in latency
    measured = p[p.index('<section id="measured">') : p.index('<section id="bounds">')]
    assert re.search(r"<td>\d[\d.]* (ms|µs)</td>", measured)
