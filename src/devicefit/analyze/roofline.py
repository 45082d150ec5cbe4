"""Roofline latency lower bounds per device and compute unit ("at best X ms").

Per op, the time is at least ``max(flops / peak_flops, bytes_moved / memory_bandwidth)``; the bound is the
sum over ops. Real latency is higher: it adds dispatch overhead, Neural Engine <-> CPU/GPU transitions,
cache misses, layout padding, and kernels that never reach peak. A bound is only as good as its inputs,
so every figure comes from the device catalog with its caveats, and a missing figure drops its term
(the bound gets weaker, never invented).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from devicefit.analyze.catalog import Device, get_device
from devicefit.analyze.flops import OpCost, resolve_function, total

__all__ = [
    "LOWER_BOUND_NOTE",
    "UNITS",
    "LatencyBounds",
    "UnitBound",
    "UnitPeak",
    "key_assumption",
    "latency_bounds",
    "latency_entry",
    "op_seconds",
    "unit_peaks",
]

UNITS = ("ne", "gpu", "cpu")
UNIT_NAMES = {"ne": "Neural Engine", "gpu": "GPU", "cpu": "CPU"}
LOWER_BOUND_NOTE = "lower bound for the device from published peak figures (roofline), not a measurement"


@dataclass(frozen=True)
class UnitPeak:
    """Peak figures of one compute unit; None where the catalog has no figure."""

    unit: str
    flops_per_s: float | None
    bytes_per_s: float | None
    notes: tuple[str, ...] = ()


@dataclass
class UnitBound:
    """The lower bound for one compute unit.

    Attributes:
        unit: ``"ne"``, ``"gpu"`` or ``"cpu"``.
        seconds: the bound, or None when the catalog has neither a peak nor a bandwidth.
        compute_bound_ops: ops whose compute term dominates.
        memory_bound_ops: ops whose memory term dominates.
        peak: the figures used.
        assumptions: what the number assumes, in words.
    """

    unit: str
    seconds: float | None
    compute_bound_ops: int
    memory_bound_ops: int
    peak: UnitPeak
    assumptions: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Both terms known (a bound missing one is weaker and not comparable across units)."""
        return bool(self.peak.flops_per_s and self.peak.bytes_per_s)

    @property
    def ms(self) -> float | None:
        return None if self.seconds is None else self.seconds * 1e3

    def describe(self) -> str:
        name = UNIT_NAMES[self.unit]
        if self.seconds is None:
            return f"{name}: no bound (no peak or bandwidth figure in the catalog)"
        partial = "" if self.complete else " (partial: a figure is missing)"
        return f"{name}: at best {self.seconds * 1e3:.3g} ms{partial}"


@dataclass
class LatencyBounds:
    """Lower bounds for one model function on one device."""

    device: Device
    flops: int
    bytes_moved: int
    ops: int
    units: dict[str, UnitBound]
    assumptions: list[str]

    def best(self) -> UnitBound | None:
        """The unit with the smallest complete bound (None when no unit has both figures)."""
        known = [u for u in self.units.values() if u.seconds is not None and u.complete]
        return min(known, key=lambda u: u.seconds or 0.0) if known else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device.id,
            "flops": self.flops,
            "bytes_moved": self.bytes_moved,
            "ops": self.ops,
            "units": {
                k: {
                    "at_best_ms": u.ms,
                    "peak_flops_per_s": u.peak.flops_per_s,
                    "bandwidth_bytes_per_s": u.peak.bytes_per_s,
                    "compute_bound_ops": u.compute_bound_ops,
                    "memory_bound_ops": u.memory_bound_ops,
                    "assumptions": u.assumptions,
                }
                for k, u in self.units.items()
            },
            "assumptions": self.assumptions,
        }


def unit_peaks(device: Device) -> dict[str, UnitPeak]:
    """Peak FLOP/s and bytes/s per compute unit from the catalog, with the caveats of each figure."""
    bw = device.mem_bandwidth_gbps * 1e9 if device.mem_bandwidth_gbps else None
    bw_note = (
        f"memory bandwidth {device.mem_bandwidth_gbps:g} GB/s ({device.sources.get('mem_bandwidth_gbps', '')})"
        if bw
        else "no memory bandwidth figure: memory term dropped"
    )
    ne_notes = [bw_note]
    ne = device.ne_tops * 1e12 if device.ne_tops else None
    if ne is None:
        ne_notes.append("no Neural Engine TOPS figure: compute term dropped")
    elif device.ne_tops_precision == "FP16":
        ne_notes.append(f"Neural Engine {device.ne_tops:g} TOPS, stated by Apple as FP16")
    else:
        ne_notes.append(
            f"Neural Engine {device.ne_tops:g} TOPS, precision basis {device.ne_tops_precision}: if the figure "
            "counts INT8 ops, fp16 work may run at about half that rate, so the real bound can be up to 2x higher"
        )
    gpu = device.gpu_fp32_tflops * 1e12 if device.gpu_fp32_tflops else None
    gpu_notes = [bw_note]
    if gpu is None:
        gpu_notes.append("no GPU TFLOPS figure: compute term dropped")
    else:
        src = device.sources.get("gpu_fp32_tflops", "")
        gpu_notes.append(f"GPU {device.gpu_fp32_tflops:g} TFLOPS fp32 ({src}); fp16 assumed no faster")
    cpu_notes = [bw_note, "no CPU peak in the catalog: memory term only (a weak bound)"]
    return {
        "ne": UnitPeak("ne", ne, bw, tuple(ne_notes)),
        "gpu": UnitPeak("gpu", gpu, bw, tuple(gpu_notes)),
        "cpu": UnitPeak("cpu", None, bw, tuple(cpu_notes)),
    }


def op_seconds(cost: OpCost, peak: UnitPeak) -> tuple[float, bool]:
    """(seconds at best, compute-bound?) for one op; a missing figure drops its term."""
    compute = cost.flops / peak.flops_per_s if peak.flops_per_s else 0.0
    memory = cost.bytes_moved / peak.bytes_per_s if peak.bytes_per_s else 0.0
    return max(compute, memory), compute >= memory and compute > 0


def _bound(costs: list[OpCost], peak: UnitPeak) -> UnitBound:
    if not peak.flops_per_s and not peak.bytes_per_s:
        return UnitBound(peak.unit, None, 0, 0, peak, list(peak.notes))
    seconds = 0.0
    compute_ops = memory_ops = 0
    for c in costs:
        t, compute_bound = op_seconds(c, peak)
        seconds += t
        if compute_bound:
            compute_ops += 1
        elif t > 0:
            memory_ops += 1
    return UnitBound(peak.unit, seconds, compute_ops, memory_ops, peak, list(peak.notes))


GENERAL_ASSUMPTIONS = [
    "a lower bound, not a prediction: per op max(FLOPs / peak, bytes moved / bandwidth), summed",
    "ignores dispatch overhead, compute-unit transitions, caches, layout padding and sub-peak kernels",
    "bytes moved: each input (weights included) read once and each output written once at its declared dtype",
    "FLOPs: multiply-accumulate = 2; elementwise = 1 per element; ops without a formula count bytes only",
]


def latency_bounds(
    model: Any,
    device: Device | str,
    units: tuple[str, ...] = UNITS,
    function: str | None = None,
) -> LatencyBounds:
    """Roofline lower bounds of ``model`` on ``device`` for each compute unit.

    Args:
        model: a list of :class:`OpCost`, an interp Program, a pymil Program/Function, an MLModel or a path.
        device: a :class:`Device` or a catalog id/name.
        units: compute units to bound, among ``"ne"``, ``"gpu"``, ``"cpu"``.
        function: the function of a multi-function model (default: its default function).

    Raises:
        InputError: unknown device or unit.
    """
    from devicefit.errors import InputError

    dev = get_device(device) if isinstance(device, str) else device
    bad = [u for u in units if u not in UNITS]
    if bad:
        raise InputError(f"unknown compute unit {bad[0]!r}; choose among {', '.join(UNITS)}")
    if isinstance(model, list):
        costs = model
    else:
        from devicefit.analyze.shapes import default_costs

        # flexible inputs at their default shape, not with every flexible axis counted as 1
        costs = default_costs(resolve_function(model, function))
    peaks = unit_peaks(dev)
    summed = total(costs)
    assumptions = list(GENERAL_ASSUMPTIONS)
    if "ne" in units and not dev.ne_usable_by_core_ml:
        units = tuple(u for u in units if u != "ne")
        assumptions.append(
            f"no Neural Engine bound: Core ML cannot use the {dev.chip} Neural Engine "
            f"({dev.sources.get('ne_tops_precision', 'device catalog')}); models run on the GPU or CPU"
        )
    unknown = sorted({c.op_type for c in costs if not c.known})
    if unknown:
        assumptions.append(f"no FLOPs formula (bytes only) for: {', '.join(unknown)}")
    if summed.symbolic:
        assumptions.append("some flexible dimensions counted as 1: the bound is below the smallest shape")
    return LatencyBounds(
        device=dev,
        flops=summed.flops,
        bytes_moved=summed.bytes_moved,
        ops=len(costs),
        units={u: _bound(costs, peaks[u]) for u in units},
        assumptions=assumptions,
    )


# ---- the JSON-ready entry of one device (check's report and profile --target share it)
def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


def _headline_unit(bounds: LatencyBounds) -> UnitBound | None:
    """The unit to quote: the smallest complete bound, else the smallest partial one, else None."""
    best = bounds.best()
    if best is not None:
        return best
    partial = [u for u in bounds.units.values() if u.seconds is not None]
    return min(partial, key=lambda u: u.seconds or 0.0) if partial else None


def key_assumption(unit: UnitBound, device: Device) -> str:
    """The one assumption that most limits how the headline bound reads, in words."""
    peak = unit.peak
    if not unit.complete:
        missing = "memory bandwidth" if not peak.bytes_per_s else f"{UNIT_NAMES[unit.unit]} peak"
        kept = "compute" if not peak.bytes_per_s else "memory"
        return (
            f"partial: the catalog has no {missing} figure for {device.name}, so only the {kept} term counts"
        )
    estimate = " (estimate)" if "mem_bandwidth_gbps" in device.secondary else ""
    bytes_per_s, flops_per_s = peak.bytes_per_s or 0.0, peak.flops_per_s or 0.0  # both known: complete
    bandwidth = f"{bytes_per_s / 1e9:g} GB/s{estimate}"
    if unit.compute_bound_ops == 0:
        return (
            f"memory-bound: each tensor moved once at {bandwidth}, no dispatch overhead or unit transitions"
        )
    if unit.unit == "ne" and device.ne_tops_precision != "FP16":
        return (
            f"Neural Engine at {device.ne_tops:g} TOPS (precision basis {device.ne_tops_precision}): if that "
            "counts INT8 ops, fp16 work can be up to 2x slower"
        )
    peak_text = f"{flops_per_s / 1e12:g} {'TOPS' if unit.unit == 'ne' else 'TFLOPS'}"
    return f"every op at {peak_text} and {bandwidth}, no dispatch overhead or unit transitions"


def latency_entry(bounds: LatencyBounds) -> dict[str, Any]:
    """One device's bounds as a JSON-ready dict with a headline ``best`` unit (None without any figure)."""
    device = bounds.device
    head = _headline_unit(bounds)
    best = None
    if head is not None:
        best = {
            "unit": head.unit,
            "unit_name": UNIT_NAMES[head.unit],
            "at_best_ms": _ms(head.seconds),
            "partial": not head.complete,
            "key_assumption": key_assumption(head, device),
        }
    return {
        "device": device.id,
        "name": device.name,
        "note": LOWER_BOUND_NOTE,
        "best": best,
        "flops": bounds.flops,
        "bytes_moved": bounds.bytes_moved,
        "ops": bounds.ops,
        "units": {
            k: {
                "at_best_ms": u.ms,
                "complete": u.complete,
                "peak_flops_per_s": u.peak.flops_per_s,
                "bandwidth_bytes_per_s": u.peak.bytes_per_s,
                "compute_bound_ops": u.compute_bound_ops,
                "memory_bound_ops": u.memory_bound_ops,
                "assumptions": list(u.assumptions),
            }
            for k, u in bounds.units.items()
        },
        "assumptions": list(bounds.assumptions),
    }
