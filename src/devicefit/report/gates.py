"""CI gates: ``--fail-on`` expressions evaluated against a report's ``summary``.

An expression is ``KEY OP VALUE`` with OP one of ``< <= > >= = == !=``; the check fails (exit 1) when the
expression is *true*, e.g. ``fp16.top1_agreement<0.99`` or ``convert.ok=false``.

One key reads as a requirement because its value is a list: ``memory.fits=DEVICE`` fails when the model
does *not* fit DEVICE (``memory.fits!=DEVICE`` fails when it does). ``memory.fits.DEVICE=false`` says the
same in the plain boolean form. Both forms fail for a device whose app memory budget is unknown (the
summary lists those under ``memory.fits_unknown``). ``ane.*`` keys read the Neural Engine lint (a
prediction) and ``latency.DEVICE.best_ms`` (or ``ne_ms`` / ``gpu_ms`` / ``cpu_ms``) the roofline lower bound
on DEVICE, e.g. ``ane.fallback_ops_share>0.1`` or ``latency.iphone-12.best_ms>5``. A gate whose key was not
measured (e.g. ``fp32.*`` without a PyTorch reference, or a null ``memory.working_set_mb``) fails, so a CI
job never passes by accident. Gate values must be finite numbers (or true/false). See docs/check.md for the
keys.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devicefit.compare.metrics import METRICS
from devicefit.errors import InputError

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "!=": operator.ne,
    "==": operator.eq,
    "<": operator.lt,
    ">": operator.gt,
    "=": operator.eq,
}
_EXPR = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(<=|>=|!=|==|<|>|=)\s*(\S.*?)\s*$")
# every per-comparison metric of the metrics table, plus the dense outputs' argmax IoU and task accuracy
# (computed when labels are given)
_METRICS = (*METRICS, "argmax_iou", "exact_match", "accuracy")
KNOWN_KEYS = (
    "convert.ok",
    *(f"{p}.{m}" for p in ("fp32", "fp16") for m in _METRICS),
    "reference.accuracy",
    "fp16.overflow_ops",
    "fp16.underflow_ops",
    "numerics.untrained",
    "size.parameters",
    "size.weight_mb",
    "size.package_mb",
    *(f"size.{p}_mb" for p in ("fp32", "fp16", "int8", "6bit", "4bit")),
    "memory.peak_activation_mb",
    "memory.working_set_mb",
    "memory.fits",
    "ane.fallback_ops_share",
    "ane.fallback_flops_share",
    "ane.fallback_ops",
    "ane.maybe_ops",
    "ane.transitions",
    "ane.ne_barred",
)
# Keys whose null means "not measured" (not a NaN measurement).
_NULL_IS_UNMEASURED = ("size.package_mb", "memory.working_set_mb")
LATENCY_UNITS = ("best", "ne", "gpu", "cpu")
_LATENCY_KEY = re.compile(r"^latency\.([A-Za-z0-9_\-]+)\.(best|ne|gpu|cpu)_ms$")


@dataclass
class Gate:
    """A parsed ``--fail-on`` expression."""

    text: str
    key: str
    op: str
    value: Any


@dataclass
class GateFailure:
    """A gate that tripped, with the measured value."""

    gate: Gate
    actual: Any
    reason: str


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return float(text)
    except ValueError:
        return text


def parse_gate(text: str) -> Gate:
    """Parse one expression; raises InputError with the accepted forms when it is malformed."""
    m = _EXPR.match(text)
    if not m:
        raise InputError(
            f"--fail-on {text!r} is not KEY<OP>VALUE; e.g. fp16.top1_agreement<0.99 or convert.ok=false"
        )
    key, op, raw = m.groups()
    if key not in KNOWN_KEYS and not key.startswith("memory.fits.") and not _LATENCY_KEY.match(key):
        raise InputError(
            f"--fail-on: unknown key {key!r}; known keys: {', '.join(KNOWN_KEYS)}, memory.fits.DEVICE, "
            f"latency.DEVICE.{{{','.join(LATENCY_UNITS)}}}_ms"
        )
    value = _value(raw)
    if key != "memory.fits" and isinstance(value, str):
        raise InputError(f"--fail-on {text!r}: {raw!r} is not a number or true/false; e.g. {key}<0.99")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"--fail-on {text!r}: {raw!r} is not a finite number; e.g. {key}<0.99")
    if key == "memory.fits" and op not in ("=", "==", "!="):
        raise InputError(
            f"--fail-on {text!r}: memory.fits takes = or != and a device id, e.g. memory.fits=iphone-12"
        )
    return Gate(text, key, op, value)


def gate_device(gate: Gate) -> str | None:
    """The device a ``memory.fits`` or ``latency.DEVICE.*`` gate names, else None."""
    if gate.key == "memory.fits":
        return str(gate.value)
    if gate.key.startswith("memory.fits."):
        return gate.key.removeprefix("memory.fits.")
    m = _LATENCY_KEY.match(gate.key)
    return m.group(1) if m else None


def gate_devices(gates: list[Gate]) -> list[str]:
    """Devices named by ``gates``, in order, without duplicates (the check must measure them)."""
    return list(dict.fromkeys(d for g in gates if (d := gate_device(g)) is not None))


def check_devices(gates: list[Gate], device_ids: list[str]) -> None:
    """Reject gates naming a device not in ``device_ids`` (before any work is done)."""
    for g in gates:
        device = gate_device(g)
        if device is not None and device not in device_ids:
            from devicefit.analyze.catalog import unknown_device

            raise unknown_device(device, f"--fail-on {g.text!r}: ")


def evaluate(
    gates: list[Gate], summary: dict[str, Any], device_ids: list[str] | None = None
) -> list[GateFailure]:
    """The gates that trip on ``summary`` (a report's ``summary`` dict).

    Args:
        gates: parsed expressions.
        summary: the report's flat summary (key -> number / bool / list).
        device_ids: known device ids, to reject typos in ``memory.fits`` gates.

    Raises:
        InputError: a ``memory.fits`` gate names an unknown device.
    """
    failures = []
    for g in gates:
        if g.key.startswith("memory.fits"):
            device = str(g.value) if g.key == "memory.fits" else g.key.removeprefix("memory.fits.")
            if device_ids is not None and device not in device_ids:
                from devicefit.analyze.catalog import unknown_device

                raise unknown_device(device, f"--fail-on {g.text!r}: ")
            fitting = summary.get("memory.fits")
            if fitting is None:
                failures.append(GateFailure(g, None, f"{g.text}: memory was not measured"))
                continue
            if device in (summary.get("memory.fits_unknown") or []):
                # No budget figure: neither "fits" nor "does not fit" can be claimed, so the gate cannot pass.
                why = f"{device}'s app memory budget is unknown (no catalog figure), so fit cannot be checked"
                failures.append(GateFailure(g, None, f"{g.text}: {why}"))
                continue
            fits = device in fitting
            if g.key == "memory.fits":
                tripped = not fits if g.op in ("=", "==") else fits
            else:
                tripped = _OPS[g.op](fits, g.value)
            if tripped:
                failures.append(
                    GateFailure(g, fits, f"{g.text}: the model {'fits' if fits else 'does not fit'} {device}")
                )
            continue
        actual = summary.get(g.key)
        if actual is None:
            # The report stores NaN as null: a present-but-null key is a NaN measurement, not a missing one.
            why = "is NaN" if g.key in summary and g.key not in _NULL_IS_UNMEASURED else "was not measured"
            failures.append(GateFailure(g, None, f"{g.text}: {g.key} {why}"))
            continue
        expected = g.value
        if isinstance(actual, bool) != isinstance(expected, bool):
            raise InputError(
                f"--fail-on {g.text!r}: {g.key} is {type(actual).__name__}, compare it with {'true/false' if isinstance(actual, bool) else 'a number'}"
            )
        if _OPS[g.op](actual, expected):
            shown = f"{actual:.6g}" if isinstance(actual, float) else str(actual).lower()
            failures.append(GateFailure(g, actual, f"{g.text}: {g.key} is {shown}"))
    return failures
