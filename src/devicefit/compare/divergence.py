"""Where fp16 goes wrong: per-op fp16-vs-fp32 error, the first divergent op, overflow/underflow, and
a warning for models that look untrained.

The interpreter runs the same program twice with ``intermediates=True``: once computing in float32 and
once rounding every fp16-typed value to float16 after each op (as the GPU / Neural Engine store them).
Walking the ops in program order and comparing each op's output between the two runs gives an error curve
along the program; the first op whose relative error passes the tolerance is where fp16 starts to diverge.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FP16_MAX = 65504.0
FP16_MIN_NORMAL = 2.0**-14
DIVERGENCE_RTOL = 1e-2


@dataclass
class OpError:
    """fp16-vs-fp32 error of one op's output (worst over the samples looked at)."""

    index: int
    op: str
    op_type: str
    value: str
    rel_error: float
    overflow: int = 0
    underflow: int = 0
    nonfinite: int = 0
    propagated: bool = False


@dataclass
class Divergence:
    """Per-op fp16 error along the program and the ops where fp16 breaks.

    Attributes:
        ops: one entry per float op output, in program order.
        first_divergent: the first op whose relative error exceeds ``tolerance`` (None if none does).
        overflow_ops: ops whose fp16 output has values beyond ±65504, or inf/NaN where fp32 was finite
            and none of the op's fp16 inputs already had inf/NaN (those ops only propagate it).
        underflow_ops: ops whose fp16 output flushed nonzero values (|x| < 2^-14 in fp32) to zero.
    """

    ops: list[OpError]
    tolerance: float
    first_divergent: OpError | None = None
    overflow_ops: list[OpError] = field(default_factory=list)
    underflow_ops: list[OpError] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.first_divergent is None and not self.overflow_ops

    def __bool__(self) -> bool:
        return self.passed


def _rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b| over the finite entries of b (inf when a is non-finite where b is finite)."""
    finite = np.isfinite(b)
    if (~np.isfinite(a) & finite).any():
        return math.inf
    if not finite.any():
        return 0.0
    diff = np.abs(a[finite] - b[finite]).max()
    return float(diff / max(float(np.abs(b[finite]).max()), 1e-30))


def op_outputs(program: Any) -> Iterable[tuple[int, Any, str, str | None]]:
    """(index, step, value name, declared dtype) for every output of the program's top-level ops."""
    for i, step in enumerate(program.plan.block.steps):
        for name, dt in zip(step.outputs, step.ctx.output_dtypes):
            yield i, step, name, dt


def find_divergence(
    program: Any,
    fp32_runs: list[dict[str, Any]],
    fp16_runs: list[dict[str, Any]],
    tolerance: float = DIVERGENCE_RTOL,
) -> Divergence:
    """Compare intermediates of fp32 and fp16 runs of ``program`` on the same samples.

    Args:
        program: an :class:`devicefit.interp.Program`.
        fp32_runs: results of ``program.run(feeds, "fp32", intermediates=True)``, one per sample.
        fp16_runs: the same samples run with ``precision="fp16"``.
        tolerance: relative error (max abs diff / max abs fp32 value) above which an op has diverged.
    """
    ops: list[OpError] = []
    # Values whose fp16 run already holds inf/NaN: ops reading them only propagate an overflow upstream.
    poisoned: set[str] = set()
    for index, step, name, dtype in op_outputs(program):
        if dtype not in ("fp16", "fp32", "bf16"):
            continue
        pairs: list[tuple[np.ndarray, np.ndarray]] = []
        for r16, r32 in zip(fp16_runs, fp32_runs):
            a, b = r16.get(name), r32.get(name)
            if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
                pairs.append((a, b))
        if not pairs:
            continue
        entry = OpError(index, step.name, step.op_type, name, 0.0)
        entry.propagated = any(src in poisoned for src in step.reads())  # nested blocks' reads too
        for a16, b32 in pairs:
            a, b = a16.astype(np.float64), b32.astype(np.float64)
            if a.shape != b.shape:
                continue
            entry.rel_error = max(entry.rel_error, _rel_error(a, b))
            if dtype == "fp16":
                fin = np.isfinite(b)
                entry.overflow += int(((np.abs(b) > FP16_MAX) & fin).sum())
                entry.nonfinite += int((~np.isfinite(a) & fin).sum())
                entry.underflow += int(((b != 0) & (np.abs(b) < FP16_MIN_NORMAL) & (a == 0)).sum())
        if any(not np.isfinite(a).all() for a, _ in pairs):
            poisoned.add(name)
        ops.append(entry)
    result = Divergence(ops, tolerance)
    result.first_divergent = next((o for o in ops if o.rel_error > tolerance), None)
    result.overflow_ops = [o for o in ops if o.overflow or (o.nonfinite and not o.propagated)]
    result.underflow_ops = [o for o in ops if o.underflow]
    return result


@dataclass
class TrainedCheck:
    """Does the model look trained? Random weights give near-uniform outputs and exaggerate numeric error.

    Attributes:
        output: the output examined (a class-score output).
        mean_entropy: mean over samples of the softmax entropy divided by log(classes) (1.0 = uniform).
        entropy_spread: standard deviation of that normalised entropy over samples.
        looks_untrained: the verdict.
    """

    output: str | None
    mean_entropy: float | None
    entropy_spread: float | None
    looks_untrained: bool
    reason: str = ""


UNIFORM_ENTROPY = 0.9
MIN_ENTROPY_SPREAD = 0.02


def looks_untrained(outputs: dict[str, np.ndarray]) -> TrainedCheck:
    """Heuristic: near-uniform class scores (high mean entropy) or the same entropy for every sample.

    Only float outputs with a class axis (last axis >= 2) are examined; rows that are already
    probabilities (non-negative, summing to 1) are used as is, others go through a softmax.
    """
    for name, arr in outputs.items():
        raw = np.asarray(arr)
        if raw.dtype.kind != "f":  # indices, labels, masks are not class scores
            continue
        a = raw.astype(np.float64)
        if a.ndim == 0 or a.shape[-1] < 2 or not np.isfinite(a).all():
            continue
        rows = a.reshape(-1, a.shape[-1])
        if (rows >= 0).all() and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3):
            p = rows
        else:
            z = rows - rows.max(axis=1, keepdims=True)
            p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        ent = -(p * np.log(np.clip(p, 1e-300, None))).sum(axis=1) / math.log(rows.shape[1])
        mean, spread = float(ent.mean()), float(ent.std())
        reasons = []
        if mean > UNIFORM_ENTROPY:
            reasons.append(f"near-uniform outputs (mean normalised entropy {mean:.2f} > {UNIFORM_ENTROPY})")
        if len(ent) >= 4 and spread < MIN_ENTROPY_SPREAD and mean > 0.05:
            reasons.append(f"the same entropy for every sample (spread {spread:.3f} < {MIN_ENTROPY_SPREAD})")
        return TrainedCheck(name, mean, spread, bool(reasons), "; ".join(reasons))
    return TrainedCheck(None, None, None, False, "no class-score output to examine")
