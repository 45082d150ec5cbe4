"""The JSON report: a plain dict built from a :class:`devicefit.check.CheckResult`.

The layout is documented in docs/report-schema.md. ``SCHEMA_VERSION`` follows semver: a new optional field
bumps the minor version, a renamed / removed / retyped field the major version.
"""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime
from typing import Any

from devicefit.report import devices as device_sections
from devicefit.report.units import human_bytes

SCHEMA_VERSION = "1.2"
MB = 1024 * 1024
# Size verdict bounds: Apple's cellular download limit for apps, and the Neural Engine's reported
# 1 GB model limit on iPhone (docs/check.md).
SIZE_WARN_BYTES = 200 * 1000 * 1000
SIZE_FAIL_BYTES = 1000 * 1000 * 1000


def _clean(value: Any) -> Any:
    """JSON-safe: NaN -> None, ±inf -> ±1e308, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return 1e308 if value > 0 else -1e308
    return value


def _comparison(c: Any) -> dict[str, Any] | None:
    if c is None:
        return None
    return {
        "reference": c.reference,
        "samples": c.samples,
        "passed": c.passed,
        "outputs": {o.output: {k: m.to_dict() for k, m in o.metrics.items()} for o in c.outputs},
        "accuracy": c.accuracy.to_dict() if c.accuracy is not None else None,
        "reference_accuracy": c.reference_accuracy,
    }


def _feature(spec: Any) -> dict[str, Any]:
    """An input / output: name, dtype, default shape, and the accepted shapes of a flexible input (1.2)."""
    out: dict[str, Any] = {"name": spec.name, "dtype": spec.dtype, "shape": list(spec.shape or [])}
    ranges = getattr(spec, "shape_range", None)
    enumerated = getattr(spec, "enumerated_shapes", None)
    if enumerated:
        out["enumerated_shapes"] = [list(s) for s in enumerated]
    elif ranges and any(lo != hi for lo, hi in ranges):
        # an unbounded upper end is -1 in the spec: null in JSON
        out["shape_range"] = [[lo, None if hi < 0 else hi] for lo, hi in ranges]
    return out


def _latency(r: Any) -> dict[str, Any] | None:
    if not r.latency:
        return None
    section = device_sections.latency_section(r.latency, r.ane_lint)
    if r.program is not None and any(getattr(s, "is_flexible", False) for s in r.program.inputs):
        section["per_shape"] = device_sections.per_shape_section(r.program, r.latency)
    return section


def _origin(origin: Any) -> dict[str, Any] | None:
    """A finding's PyTorch origin (module path, type, file:line), None when the package has no provenance."""
    return origin.to_dict() if origin is not None else None


def _op_error(o: Any, prov: Any = None) -> dict[str, Any]:
    from devicefit.compare.divergence import op_place

    origin, where = op_place(o, prov)
    return {
        "index": o.index,
        "op": o.op,
        "op_type": o.op_type,
        "origin": _origin(origin),
        "where": where,
        "value": o.value,
        "rel_error": o.rel_error,
        "overflow": o.overflow,
        "nonfinite": o.nonfinite,
        "underflow": o.underflow,
    }


def _divergence(d: Any, program: Any = None) -> dict[str, Any] | None:
    """The fp16 divergence findings, each led by the PyTorch module it came from (when the package knows)."""
    if d is None:
        return None
    from devicefit.convert.provenance import load_from_package

    prov = load_from_package(program) if program is not None else None
    return {
        "tolerance": d.tolerance,
        "first_divergent": _op_error(d.first_divergent, prov) if d.first_divergent else None,
        "overflow": [_op_error(o, prov) for o in d.overflow_ops],
        "underflow": [_op_error(o, prov) for o in d.underflow_ops],
        "per_op": [_op_error(o, prov) for o in d.ops],
    }


def _verdict(status: str, reason: str) -> dict[str, str]:
    return {"status": status, "reason": reason}


def _verdicts(r: Any) -> dict[str, dict[str, str]]:
    """The check's verdicts (devicefit.check.verdicts) plus the size and Neural Engine verdicts."""
    decided = {k: v.to_dict() for k, v in r.verdicts.items()}
    v: dict[str, dict[str, str]] = {"convert": decided["convert"], "numerics": decided["numerics"]}
    if not r.convert.ok:
        v["size"] = _verdict("skipped", "conversion failed")
        v["memory"] = decided["memory"]
        v["neural_engine"] = _verdict("skipped", "conversion failed")
        return v
    stored = r.size.package_bytes or r.size.weight_bytes
    if stored > SIZE_FAIL_BYTES:
        v["size"] = _verdict(
            "fail", f"{stored / MB:.0f} MB: over 1 GB, cannot run on the iPhone Neural Engine"
        )
    elif stored > SIZE_WARN_BYTES:
        v["size"] = _verdict("warn", f"{stored / MB:.0f} MB: over the 200 MB cellular download limit")
    else:
        v["size"] = _verdict(
            "pass",
            f"{human_bytes(stored)} on disk" if r.size.package_bytes else f"{human_bytes(stored)} of weights",
        )
    v["memory"] = decided["memory"]
    if r.ane_lint is not None:
        v["neural_engine"] = _verdict(*device_sections.ane_verdict(device_sections.ane_section(r.ane_lint)))
    else:
        v["neural_engine"] = _verdict("skipped", "the Neural Engine lint did not run (see warnings)")
    v.update({k: d for k, d in decided.items() if k not in v})
    return v


def _summary(r: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"convert.ok": r.convert.ok}

    def measured(key: str, value: Any) -> None:
        # null in the summary means NaN (docs/report-schema.md): a metric no output has (SNR of integer
        # outputs, of an all-zero reference) is left out, which a gate reads as "was not measured"
        if value is not None:
            s[key] = value

    for comp in (r.fp32, r.fp16):
        if comp is None:
            continue
        names = {k for o in comp.outputs for k in o.metrics}
        for name in sorted(names):
            measured(f"{comp.name}.{name}", comp.worst(name))
        if comp.accuracy is not None:
            measured(f"{comp.name}.accuracy", comp.accuracy.value)
            measured("reference.accuracy", comp.reference_accuracy)
    for name, q in getattr(r, "questions", {}).items():
        if q.comparison is not None:
            for metric in ("snr_db", "cosine_similarity", "max_rel_error"):
                measured(f"{name}.{metric}", q.comparison.worst(metric))
    if getattr(r, "repair", None) is not None:
        s["fp16.repair_ops"] = len(r.repair.ops)
        s["fp16.repair_passed"] = r.repair.passed
    if r.divergence is not None:
        s["fp16.overflow_ops"] = len(r.divergence.overflow_ops)
        s["fp16.underflow_ops"] = len(r.divergence.underflow_ops)
    if r.trained is not None:
        s["numerics.untrained"] = r.trained.looks_untrained
    if r.size is not None:
        s["size.parameters"] = r.size.parameters
        s["size.weight_mb"] = r.size.weight_bytes / MB
        s["size.package_mb"] = None if r.size.package_bytes is None else r.size.package_bytes / MB
        for p, b in r.size.bytes_at.items():
            s[f"size.{p}_mb"] = b / MB
    if r.memory is not None:
        s["memory.peak_activation_mb"] = r.memory.peak_bytes / MB
        s["memory.working_set_mb"] = None if r.working_set_bytes is None else r.working_set_bytes / MB
        s["memory.fits"] = [f.device for f in r.fits if f.fits]
        s["memory.fits_unknown"] = [f.device for f in r.fits if f.fits is None]
    if r.ane_lint is not None:
        s.update(device_sections.ane_summary(device_sections.ane_section(r.ane_lint)))
    if r.latency:
        s.update(device_sections.latency_summary(device_sections.latency_section(r.latency)))
    return s


def build_report(r: Any) -> dict[str, Any]:
    """The JSON-ready report dict for a :class:`devicefit.check.CheckResult` (see docs/report-schema.md)."""
    from devicefit import __version__

    prog = r.program
    model: dict[str, Any] = {"origin": r.origin, "kind": r.kind}
    if prog is not None:
        model.update(
            inputs=[_feature(s) for s in prog.inputs],
            outputs=[_feature(s) for s in prog.outputs],
            opset=f"iOS{prog.opset}",
            op_counts=prog.op_counts,
        )
    o = r.options
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "devicefit", "version": __version__},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": model,
        "options": {
            "deployment_target": o.deployment_target,
            # Deprecated alias of deployment_target (schema 1.0); removed in 2.0.
            "target": o.deployment_target,
            "devices": list(o.devices),
            "precision": o.precision,
            "fp32_ops": list(o.fp32_ops),
            "samples": o.samples,
            "data": o.data,
        },
        "convert": {
            "ok": r.convert.ok,
            "skipped": r.convert.skipped,
            "frontend": r.convert.frontend,
            "seconds": r.convert.seconds,
            "error": r.convert.error,
            "unsupported": r.convert.unsupported,
            "rescued": r.convert.rescued,
            "frontends": list(getattr(r.convert, "frontends", []) or []),
            # only a package that was written: a failed conversion leaves none behind
            "package": str(o.package_path) if o.package_path and r.convert.ok else None,
        },
        "data": None,
        "numerics": None,
        "size": None,
        "memory": None,
        "ane": device_sections.ane_section(r.ane_lint) if r.ane_lint is not None else None,
        "latency": _latency(r),
        "verdicts": _verdicts(r),
        "summary": _summary(r),
        "warnings": list(r.warnings),
        "timings": dict(r.timings),
        "extras": dict(r.extras),
    }
    if r.dataset is not None:
        report["data"] = {
            "origin": r.dataset.origin,
            "samples": len(r.dataset.feeds),
            "labels": r.dataset.labels is not None,
        }
        if getattr(r, "bad_samples", None):
            report["data"]["bad_samples"] = list(r.bad_samples)
            report["data"]["findings"] = list(r.data_findings)
    if r.fp16 is not None:
        t = r.trained
        report["numerics"] = {
            "fp32": _comparison(r.fp32),
            "fp16": _comparison(r.fp16),
            "divergence": _divergence(r.divergence, r.program),
            # the computed fp16 fix (devicefit.check.repair), with the repaired model verified vs PyTorch
            "repair": None
            if getattr(r, "repair", None) is None
            else {**r.repair.to_dict(), "verified": _comparison(r.repair.verified)},
            # conversion fidelity / weight storage / compute precision (docs/metrics.md)
            "questions": {
                name: {
                    "measured_on": q.measured_on,
                    "passed": q.passed,
                    "comparison": _comparison(q.comparison),
                }
                for name, q in getattr(r, "questions", {}).items()
            },
            "trained": None
            if t is None
            else {
                "output": t.output,
                "mean_entropy": t.mean_entropy,
                "entropy_spread": t.entropy_spread,
                "looks_untrained": t.looks_untrained,
                "reason": t.reason,
            },
        }
    if r.size is not None:
        report["size"] = {
            "parameters": r.size.parameters,
            "weight_bytes": r.size.weight_bytes,
            "bytes_at": r.size.bytes_at,
            "package_bytes": r.size.package_bytes,
            "layers": [
                {
                    "op": x.op,
                    "op_type": x.op_type,
                    "parameters": x.parameters,
                    "bytes": x.bytes,
                    "origin": _origin(getattr(x, "origin", None)),
                    "where": getattr(x, "where", x.op),
                }
                for x in r.size.layers
            ],
        }
    if r.memory is not None:
        m = r.memory
        report["memory"] = {
            "peak_activation_bytes": m.peak_bytes,
            "peak_op": m.peak_op,
            "peak_index": m.peak_index,
            "peak_origin": _origin(getattr(m, "peak_origin", None)),
            "peak_where": getattr(m, "peak_where", m.peak_op),
            "peak_advice": m.advice() if hasattr(m, "advice") else "",
            "weight_bytes": r.size.weight_bytes if r.size else None,
            "working_set_bytes": r.working_set_bytes,
            "approximate": m.approximate,
            "per_op": [{"op": n, "bytes": b} for n, b in zip(m.op_names, m.per_op)],
            "fits": [
                {
                    "device": f.device,
                    "name": f.name,
                    "budget_mb": f.budget_mb,
                    "used_fraction": f.used_fraction,
                    "fits": f.fits,
                    "verdict": f.verdict,
                    "budget_derivation": f.budget_derivation,
                }
                for f in r.fits
            ],
        }
    return _clean(report)


def to_json(report: dict[str, Any]) -> str:
    """Serialise a report dict (stable key order, indented)."""
    return json.dumps(report, indent=2, sort_keys=False, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike[str], report: dict[str, Any]) -> None:
    """Write the report atomically (callers check ``--force`` first); ``-`` writes it to stdout."""
    import sys

    if str(path) == "-":
        sys.stdout.write(to_json(report))
        sys.stdout.flush()
        return
    from devicefit.io import atomic_write_text

    atomic_write_text(path, to_json(report))
