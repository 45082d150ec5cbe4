"""The JSON report: versioned, complete, JSON-safe, agreeing with the result it came from."""

from __future__ import annotations

import json
import math

import pytest

from devicefit.report.schema import SCHEMA_VERSION, build_report, to_json, write_json

TOP_LEVEL = {
    "schema_version", "tool", "created", "model", "options", "convert", "data", "numerics", "size", "memory",
    "verdicts", "summary", "warnings", "timings", "extras",
}  # fmt: skip


def test_report_layout(demo_report, demo_result):
    r = demo_report
    assert set(r) == TOP_LEVEL
    assert r["schema_version"] == SCHEMA_VERSION
    assert set(r["verdicts"]) == {"convert", "numerics", "size", "memory"}
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
