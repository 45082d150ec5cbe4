"""--fail-on parsing and evaluation."""

from __future__ import annotations

import pytest

from devicefit.errors import InputError
from devicefit.report.gates import check_devices, evaluate, gate_devices, parse_gate

SUMMARY = {
    "convert.ok": True,
    "fp16.top1_agreement": 0.985,
    "fp32.max_rel_error": 1e-5,
    "memory.working_set_mb": 12.0,
    "memory.fits": ["iphone-12", "iphone-15"],
    "ane.fallback_ops_share": 0.25,
    "ane.ne_barred": False,
    "latency.iphone-12.best_ms": 6.5,
}
DEVICES = ["iphone-8", "iphone-12", "iphone-15"]


def _trips(*exprs: str) -> list[str]:
    return [f.gate.text for f in evaluate([parse_gate(e) for e in exprs], SUMMARY, DEVICES)]


def test_numeric_and_boolean_gates():
    assert _trips("fp16.top1_agreement<0.99") == ["fp16.top1_agreement<0.99"]
    assert _trips("fp16.top1_agreement<0.98") == []
    assert _trips("fp32.max_rel_error>=1e-5", "memory.working_set_mb > 100") == ["fp32.max_rel_error>=1e-5"]
    assert _trips("convert.ok=false") == []
    assert _trips("convert.ok=true") == ["convert.ok=true"]


def test_memory_fits_is_a_requirement():
    assert _trips("memory.fits=iphone-12") == []
    assert _trips("memory.fits=iphone-8") == ["memory.fits=iphone-8"]
    assert _trips("memory.fits!=iphone-12") == ["memory.fits!=iphone-12"]
    assert _trips("memory.fits.iphone-8=false") == ["memory.fits.iphone-8=false"]
    reasons = [f.reason for f in evaluate([parse_gate("memory.fits=iphone-8")], SUMMARY)]
    assert reasons == ["memory.fits=iphone-8: the model does not fit iphone-8"]


def test_unmeasured_keys_fail_the_gate():
    failures = evaluate([parse_gate("fp32.top1_agreement<0.99")], SUMMARY)
    assert failures and "not measured" in failures[0].reason


def test_null_working_set_fails_as_not_measured():
    summary = {**SUMMARY, "memory.working_set_mb": None}
    (failure,) = evaluate([parse_gate("memory.working_set_mb>100")], summary)
    assert failure.reason == "memory.working_set_mb>100: memory.working_set_mb was not measured"


@pytest.mark.parametrize(
    "expr",
    ["memory.fits=ipad-air-3rd-gen", "memory.fits!=ipad-air-3rd-gen", "memory.fits.ipad-air-3rd-gen=false"],
)
def test_memory_fits_with_unknown_budget_fails_saying_so(expr):
    summary = {**SUMMARY, "memory.fits_unknown": ["ipad-air-3rd-gen"]}
    (failure,) = evaluate([parse_gate(expr)], summary, [*DEVICES, "ipad-air-3rd-gen"])
    assert failure.reason == (
        f"{expr}: ipad-air-3rd-gen's app memory budget is unknown (no catalog figure), so fit cannot be checked"
    )


@pytest.mark.parametrize(
    "expr",
    ["fp16.top1_agreement<nan", "memory.working_set_mb>inf", "fp32.snr_db<-Infinity", "size.weight_mb>1e999"],
)
def test_non_finite_gate_values_are_rejected(expr):
    with pytest.raises(InputError, match="is not a finite number") as e:
        parse_gate(expr)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "expr", ["fp16.top1_agreement", "nonsense<1", "fp16.top1_agreement<<0.9", "memory.fits<3", ""]
)
def test_bad_expressions_are_input_errors(expr):
    with pytest.raises(InputError) as e:
        parse_gate(expr)
    assert "\n" not in str(e.value)


def test_unknown_device_and_type_mismatch():
    with pytest.raises(InputError, match="unknown device 'iphone-99'"):
        check_devices([parse_gate("memory.fits=iphone-99")], DEVICES)
    with pytest.raises(InputError, match="true/false"):
        evaluate([parse_gate("convert.ok<1")], SUMMARY)


def test_neural_engine_and_latency_gates():
    assert _trips("ane.fallback_ops_share>0.1", "ane.fallback_ops_share>0.3") == [
        "ane.fallback_ops_share>0.1"
    ]
    assert _trips("ane.ne_barred=true") == []
    assert _trips("latency.iphone-12.best_ms>5", "latency.iphone-12.best_ms>7") == [
        "latency.iphone-12.best_ms>5"
    ]
    (failure,) = evaluate([parse_gate("latency.iphone-15.gpu_ms>1")], SUMMARY, DEVICES)
    assert "was not measured" in failure.reason  # no bound for that unit: the gate fails, never passes
    with pytest.raises(InputError, match=r"latency\.DEVICE"):
        parse_gate("latency.iphone-12.p50_ms>5")
    gates = [
        parse_gate(e) for e in ("latency.iphone-15.best_ms>5", "memory.fits=iphone-8", "ane.maybe_ops>0")
    ]
    assert gate_devices(gates) == ["iphone-15", "iphone-8"]
    with pytest.raises(InputError, match="unknown device 'iphone-99'"):
        check_devices([parse_gate("latency.iphone-99.best_ms>5")], DEVICES)
