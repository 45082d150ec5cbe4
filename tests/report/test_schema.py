"""The JSON report: versioned, complete, JSON-safe, agreeing with the result it came from."""

from __future__ import annotations

import json
import math

import pytest

from devicefit.report.schema import SCHEMA_VERSION, build_report, to_json, write_json

TOP_LEVEL = {
    "schema_version", "tool", "created", "model", "options", "convert", "data", "numerics", "size", "memory",
    "ane", "latency", "verdicts", "summary", "warnings", "timings", "extras",
}  # fmt: skip


def test_report_layout(demo_report, demo_result):
    r = demo_report
    assert set(r) == TOP_LEVEL
    assert r["schema_version"] == SCHEMA_VERSION == "1.2"
    assert set(r["verdicts"]) == {"convert", "numerics", "size", "memory", "neural_engine"}
    assert r["options"]["deployment_target"] == r["options"]["target"] == "iOS17"
    assert r["options"]["devices"] == []
    assert r["data"]["samples"] == 24 and r["data"]["labels"] is True
    fp16 = r["numerics"]["fp16"]
    assert fp16["reference"] == "pytorch"
    assert fp16["accuracy"]["value"] == pytest.approx(demo_result.fp16.accuracy.value)
    assert r["summary"]["fp16.top1_agreement"] == demo_result.fp16.worst("top1_agreement")
    assert r["memory"]["peak_activation_bytes"] == max(o["bytes"] for o in r["memory"]["per_op"])
    assert (
        r["memory"]["working_set_bytes"] == r["size"]["weight_bytes"] + r["memory"]["peak_activation_bytes"]
    )
    assert len(r["numerics"]["divergence"]["per_op"]) == len(demo_result.program.plan.block.steps)
    assert any(f["device"] == "iphone-12" for f in r["memory"]["fits"])


def test_json_round_trip_is_strict(demo_report, tmp_path):
    path = tmp_path / "r.json"
    write_json(path, demo_report)
    loaded = json.loads(path.read_text())
    assert loaded["summary"] == json.loads(to_json(demo_report))["summary"]


def test_non_finite_values_become_json_safe(demo_result):
    import copy

    broken = copy.copy(demo_result)
    broken.fp16 = copy.deepcopy(demo_result.fp16)
    broken.fp16.outputs[0].metrics["snr_db"].value = math.inf
    broken.fp16.outputs[0].metrics["max_abs_error"].value = math.nan
    text = to_json(build_report(broken))  # allow_nan=False would raise on NaN / inf
    assert "NaN" not in text and "Infinity" not in text


def test_neural_engine_section_is_a_labelled_prediction(demo_report, demo_result):
    ane = demo_report["ane"]
    assert ane["prediction"] is True and "not a measurement" in ane["disclaimer"]
    assert 0.0 <= ane["fallback_ops_share"] <= 1.0 and 0.0 <= ane["fallback_flops_share"] <= 1.0
    assert ane["ops"] == len(ane["per_op"]) > 0 and ane["flops"] > 0
    assert {o["op_type"] for o in ane["per_op"]} >= {"conv", "relu", "linear"}
    assert demo_report["summary"]["ane.fallback_ops_share"] == ane["fallback_ops_share"]
    assert demo_report["summary"]["ane.ne_barred"] is False
    verdict = demo_report["verdicts"]["neural_engine"]
    assert verdict["status"] == "pass" and verdict["reason"].startswith("predicted")  # a small fp16 CNN


def test_latency_section_bounds_default_devices(demo_report):
    from devicefit.check import DEFAULT_DEVICES

    lat = demo_report["latency"]
    assert [e["device"] for e in lat["devices"]] == list(DEFAULT_DEVICES)
    assert "not a measurement" in lat["note"] and lat["assumptions"]
    by_id = {e["device"]: e for e in lat["devices"]}
    twelve = by_id["iphone-12"]
    assert twelve["best"]["unit"] in ("ne", "gpu") and twelve["best"]["partial"] is False
    assert twelve["best"]["at_best_ms"] > 0 and twelve["best"]["key_assumption"]
    assert twelve["flops"] == demo_report["ane"]["flops"]  # both count the same program
    # No memory bandwidth for the iPhone 15 Pro in the catalog: its bound is partial, and says so.
    assert by_id["iphone-15-pro"]["best"]["partial"] is True
    assert "memory bandwidth" in by_id["iphone-15-pro"]["best"]["key_assumption"]
    s = demo_report["summary"]
    assert s["latency.iphone-12.best_ms"] == twelve["best"]["at_best_ms"]
    assert s["latency.iphone-12.ne_ms"] >= s["latency.iphone-12.best_ms"] > 0
    assert "latency.iphone-16-pro.gpu_ms" not in s  # no GPU figure: no bound, not a zero


def test_unknown_working_set_and_budget_are_null_not_zero(demo_result):
    import copy

    from devicefit.analyze.catalog import load_catalog
    from devicefit.analyze.memory import fit_table

    ipad = [d for d in load_catalog() if d.id == "ipad-air-3rd-gen"]
    assert ipad and ipad[0].app_memory_budget_mb is None  # the catalog has no figure for it
    unknown = copy.copy(demo_result)
    unknown.working_set_bytes = None
    unknown.fits = fit_table(demo_result.working_set_bytes, ipad)
    s = build_report(unknown)["summary"]
    assert s["memory.working_set_mb"] is None
    assert s["memory.fits"] == [] and s["memory.fits_unknown"] == ["ipad-air-3rd-gen"]


def test_demo_findings_lead_with_pytorch_modules(demo_report):
    """Issue 12: size, memory and lint findings name the PyTorch module and source line of the demo."""
    layers = demo_report["size"]["layers"]
    assert layers and all(
        x["origin"] and x["where"].split(" ")[0] in ("conv1", "conv2", "fc") for x in layers
    )
    assert all("demo.py:" in x["where"] and x["where"].endswith(f"({x['op']})") for x in layers)
    mem = demo_report["memory"]
    assert "demo.py:" in mem["peak_where"] and mem["peak_where"] in mem["peak_advice"]
    ane = [o for o in demo_report["ane"]["per_op"] if o["op_type"] == "conv"]
    assert ane and all(o["where"].startswith("conv") and "(Conv2d)" in o["where"] for o in ane)
