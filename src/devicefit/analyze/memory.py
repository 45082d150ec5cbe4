"""Peak activation memory from value lifetimes, working set, and fit against Apple devices.

Liveness model (see docs/memory.md): ops run one at a time in program order. A value is live from the op
that produces it (graph inputs: from the first op) through its last consumer; graph outputs stay live to the
end. While op *i* runs, everything live at *i* is held: its inputs, its outputs and every value still
waiting for a later consumer. Bytes = numel x size of the value's declared dtype. Weights (constants) are
counted separately in the working set: working set = weight bytes + peak activation bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from devicefit import dtypes

if TYPE_CHECKING:
    from devicefit.convert.provenance import Origin, Provenance

MB = 1024 * 1024


@dataclass
class OpNode:
    """One op for liveness: its name, type, the values it reads and the values it writes."""

    name: str
    op_type: str
    inputs: list[str]
    outputs: list[str]


@dataclass
class Lifetime:
    """A value's live range [start, end] in op indices, and its size."""

    value: str
    start: int
    end: int
    bytes: int


@dataclass
class ActivationMemory:
    """Activation memory along the program.

    Attributes:
        per_op: bytes live while each op runs (same order as the ops).
        op_names: the ops' names.
        peak_bytes: the largest entry of ``per_op``.
        peak_op: the op where the peak happens (first one if several tie).
        peak_index: its index.
        lifetimes: every value's live range.
        approximate: some shapes were unknown (dynamic) and taken from a run or assumed 1.
        peak_origin: the PyTorch module, type and source line of the peak op (None when unknown).
        peak_values: the largest values live at the peak, largest first: (where it comes from, bytes); "where"
            names the PyTorch module first and the MIL value in parentheses.
    """

    per_op: list[int]
    op_names: list[str]
    peak_bytes: int
    peak_op: str | None
    peak_index: int | None
    lifetimes: list[Lifetime] = field(default_factory=list)
    approximate: bool = False
    peak_origin: Origin | None = None
    peak_values: list[tuple[str, int]] = field(default_factory=list)

    @property
    def peak_where(self) -> str | None:
        """The peak op as a user reads it: PyTorch module, type and line first, the MIL op in parentheses."""
        if self.peak_op is None:
            return None
        from devicefit.convert.provenance import where

        return where(self.peak_origin, self.peak_op)

    def advice(self) -> str:
        """What to do about the peak: which values dominate it and how to shrink them."""
        if self.peak_op is None:
            return ""
        biggest = "; ".join(f"{_size_text(b)} from {label}" for label, b in self.peak_values[:3])
        held = f". Largest values live then: {biggest}" if biggest else ""
        return (
            f"peak while running {self.peak_where}{held}. To lower it: reduce the input resolution or "
            "sequence length, the batch, or the channel count of that layer; or split the layer so its "
            "large output is consumed before the next one is produced"
        )


def _size_text(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", MB), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


def liveness(
    ops: list[OpNode], graph_inputs: list[str], graph_outputs: list[str], value_bytes: dict[str, int]
) -> ActivationMemory:
    """Live bytes while each op runs, and the peak (see the module docstring for the model).

    Values missing from ``value_bytes`` (constants, weights) are not counted.
    """
    last = len(ops) - 1
    start: dict[str, int] = {}
    end: dict[str, int] = {}
    for name in graph_inputs:
        start[name] = end[name] = 0
    for i, op in enumerate(ops):
        for v in op.outputs:
            start.setdefault(v, i)
            end[v] = max(end.get(v, i), i)
        for v in op.inputs:
            if v in start:
                end[v] = max(end[v], i)
    for v in graph_outputs:
        if v in end:
            end[v] = max(last, 0)
    lifetimes = [Lifetime(v, start[v], end[v], value_bytes[v]) for v in start if v in value_bytes]
    per_op = [0] * len(ops)
    for lt in lifetimes:
        for i in range(lt.start, lt.end + 1):
            per_op[i] += lt.bytes
    if not per_op:
        return ActivationMemory([], [], 0, None, None, lifetimes)
    peak_index = int(np.argmax(per_op))
    return ActivationMemory(
        per_op, [op.name for op in ops], per_op[peak_index], ops[peak_index].name, peak_index, lifetimes
    )


def value_size(shape: tuple[int | None, ...] | None, dtype: str | None) -> tuple[int, bool]:
    """(bytes, exact) for a value: unknown dimensions count as 1 and make the size inexact."""
    if shape is None:
        return dtypes.tensor_bytes(dtype or "fp32", 1), False
    exact = all(d is not None for d in shape)
    numel = int(np.prod([d if d is not None else 1 for d in shape])) if shape else 1
    return dtypes.tensor_bytes(dtype or "fp32", numel), exact


def program_activation_memory(
    program: Any, observed: dict[str, Any] | None = None, provenance: Provenance | None = None
) -> ActivationMemory:
    """:func:`liveness` over a program's top-level ops, sizes from declared types.

    Args:
        program: an :class:`devicefit.interp.Program`.
        observed: values from a run with ``intermediates=True``; their shapes stand in for dynamic dims.
        provenance: MIL name -> PyTorch origin (default: what the package's metadata holds, if anything).
    """
    observed = observed or {}
    steps = program.plan.block.steps
    ops = [OpNode(s.name, s.op_type, s.reads(), list(s.outputs)) for s in steps]
    sizes: dict[str, int] = {}
    approximate = False
    declared = [(s.name, s.shape, s.dtype) for s in program.inputs]
    for step in steps:
        declared += list(zip(step.outputs, step.ctx.output_shapes, step.ctx.output_dtypes))
    for name, shape, dtype in declared:
        if shape is not None and any(d is None for d in shape) and name in observed:
            shape = tuple(np.shape(observed[name]))
        sizes[name], exact = value_size(shape, dtype)
        approximate |= not exact
    outputs = [o.name for o in program.outputs]
    result = liveness(ops, [s.name for s in program.inputs], outputs, sizes)
    result.approximate = approximate
    if result.peak_index is not None:
        if provenance is None:
            from devicefit.convert.provenance import load_from_package

            provenance = load_from_package(program)
        peak = steps[result.peak_index]
        if provenance is not None:
            result.peak_origin = provenance.find(*peak.outputs, peak.name)
        from devicefit.convert.provenance import where

        live = [lt for lt in result.lifetimes if lt.start <= result.peak_index <= lt.end]
        result.peak_values = [
            (where(provenance.get(lt.value) if provenance else None, lt.value), lt.bytes)
            for lt in sorted(live, key=lambda lt: -lt.bytes)[:5]
        ]
    return result


@dataclass
class DeviceFit:
    """How the working set compares with one device's per-app memory budget."""

    device: str
    name: str
    budget_mb: float | None
    used_fraction: float | None
    fits: bool | None
    budget_derivation: str = ""

    @property
    def verdict(self) -> str:
        if self.fits is None:
            return "unknown"
        if not self.fits:
            return "too big"
        return "tight" if (self.used_fraction or 0) > 0.5 else "fits"


def fit_table(working_set_bytes: int, devices: list[Any] | None = None) -> list[DeviceFit]:
    """Working set against each device's app memory budget (``app_memory_budget_mb`` of the catalog).

    A model fits when its working set is at most the budget; "tight" above half of it, because the app
    itself, Core ML's runtime and compiled-model caches share the same budget.

    Args:
        working_set_bytes: weights + peak activations, in bytes.
        devices: catalog entries (default: ``devicefit.analyze.catalog.load_catalog()``).
    """
    if devices is None:
        from devicefit.analyze.catalog import load_catalog

        devices = load_catalog()
    rows = []
    mb = working_set_bytes / MB
    for d in devices:
        budget = getattr(d, "app_memory_budget_mb", None)
        derivation = str(getattr(d, "budget_derivation", "") or "")
        if not budget:
            rows.append(DeviceFit(d.id, d.name, None, None, None, derivation))
            continue
        used = mb / float(budget)
        rows.append(DeviceFit(d.id, d.name, float(budget), used, used <= 1.0, derivation))
    return rows
