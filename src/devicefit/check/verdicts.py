"""Stage 6: verdicts (pass / warn / fail / skipped, with the reason a user reads) from the measurements.

The report adds the ``size`` and ``neural_engine`` verdicts (they are formatted with its units and device
sections); every other verdict is decided here, so the CLI's exit code and the report agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PASS, WARN, FAIL, SKIPPED = "pass", "warn", "fail", "skipped"


@dataclass
class Verdict:
    """One area's verdict.

    Attributes:
        status: ``pass``, ``warn``, ``fail`` or ``skipped``.
        reason: one line for the user: what moved, by how much, and where.
    """

    status: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"status": self.status, "reason": self.reason}


def _convert(r: Any) -> Verdict:
    if not r.convert.ok:
        unsupported = r.convert.unsupported or []
        if unsupported:
            names = ", ".join(u["op"] if isinstance(u, dict) else str(u) for u in unsupported)
            return Verdict(
                FAIL, f"{len(unsupported)} unsupported op(s): {names} (where and what to do: see below)"
            )
        return Verdict(FAIL, (r.convert.error or "conversion failed").splitlines()[0])
    if r.convert.rescued:
        return Verdict(WARN, f"rescued ops: {', '.join(r.convert.rescued)}")
    return Verdict(PASS, "converted")


def _numerics(r: Any) -> Verdict:
    if r.fp32 is not None and not r.fp32.passed:
        return Verdict(FAIL, "fp32 run differs from PyTorch: a conversion problem")
    if r.fp16 is not None and not r.fp16.passed:
        first = r.divergence.first_divergent if r.divergence is not None else None
        where = f"; first diverges at {first.op} ({first.op_type})" if first else ""
        return Verdict(FAIL, f"fp16 outside tolerance{where}")
    if r.divergence is not None and r.divergence.overflow_ops:
        o = r.divergence.overflow_ops[0]
        return Verdict(FAIL, f"fp16 overflow at {o.op} ({o.op_type})")
    if r.trained is not None and r.trained.looks_untrained:
        return Verdict(WARN, "model looks untrained; errors may be exaggerated")
    if r.divergence is not None and (r.divergence.underflow_ops or r.divergence.first_divergent):
        return Verdict(WARN, "fp16 underflow or intermediate divergence (outputs within tolerance)")
    return Verdict(PASS, "outputs within tolerance")


def _memory(r: Any) -> Verdict:
    known = [f for f in r.fits if f.fits is not None]
    fitting = [f for f in known if f.fits]
    if not known:
        return Verdict(SKIPPED, "no device in the fit table has a known app memory budget")
    if not fitting:
        return Verdict(FAIL, "working set exceeds every device's app memory budget")
    if len(fitting) < len(known):
        return Verdict(WARN, f"fits {len(fitting)} of {len(known)} devices with a known budget")
    return Verdict(PASS, f"fits all {len(known)} devices with a known budget")


def _flexible(flexible: dict[str, Any]) -> Verdict:
    checks = flexible.get("checks", [])
    failed = [c for c in checks if not c["ok"]]
    if not failed:
        return Verdict(PASS, f"all {len(checks)} shape checks within {flexible['rtol']:g} of PyTorch")
    first = failed[0]
    where = ", ".join(f"{k}={'x'.join(map(str, v))}" for k, v in first["shapes"].items())
    why = first["error"] or f"relative error {first['rel_error']:.3g} > {flexible['rtol']:g}"
    return Verdict(FAIL, f"{len(failed)} of {len(checks)} shape checks failed ({where}: {why})")


def decide(r: Any) -> dict[str, Verdict]:
    """Verdicts for a :class:`devicefit.check.CheckResult` (all but ``size`` and ``neural_engine``)."""
    v = {"convert": _convert(r)}
    if not r.convert.ok:
        for area in ("numerics", "memory"):
            v[area] = Verdict(SKIPPED, "conversion failed")
        return v
    v["numerics"] = _numerics(r)
    v["memory"] = _memory(r)
    flexible = r.extras.get("flexible")
    if flexible:
        v["flexible_shapes"] = _flexible(flexible)
    return v
