"""Where fp16 goes wrong: per-op fp16-vs-fp32 error, the first divergent op, overflow/underflow, and
a warning for models that look untrained.

The interpreter runs the same program twice with ``intermediates=True``: once computing in float32 and
once rounding every fp16-typed value to float16 after each op (as the GPU / Neural Engine store them).
Walking the ops in program order and comparing each op's output between the two runs gives an error curve
along the program; the first op whose relative error passes the tolerance is where fp16 starts to diverge.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
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
    # the program input this op casts to fp16, when it is that cast: a finding there is about the input's
    # values (e.g. beyond fp16's range), not about a layer
    model_input: str | None = None


def op_place(o: OpError, provenance: Any = None) -> tuple[Any, str]:
    """(the PyTorch origin or None, ``module (Type) at file:line (mil_name)``) of an op finding.

    NOTE: the cast of a program input is named as the input: coremltools reuses op names, so a provenance
    entry for ``cast_2`` may be a layer's own cast removed during conversion (PointNet's input cast was
    reported as its BatchNorm1d).
    """
    from devicefit.convert.provenance import where

    if o.model_input is not None:
        return None, f"the input {o.model_input} ({o.op}, its cast to fp16)"
    origin = provenance.find(o.value, o.op) if provenance is not None else None
    return origin, where(origin, o.op)


@dataclass
class Divergence:
    """Per-op fp16 error along the program and the ops where fp16 breaks.

    Attributes:
        ops: one entry per float op output, in program order.
        first_divergent: the first op whose relative error exceeds ``tolerance`` (None if none does).
        overflow_ops: ops whose fp16 output has values beyond ±65504, or inf/NaN where fp32 was finite
            and none of the op's fp16 inputs already had inf/NaN (those ops only propagate it).
        underflow_ops: ops whose fp16 output flushed nonzero values (|x| < 2^-14 in fp32) to zero.
        first_nonfinite_fp32: the first op whose fp32 output holds inf/NaN while all it reads is finite.
    """

    ops: list[OpError]
    tolerance: float
    first_divergent: OpError | None = None
    overflow_ops: list[OpError] = field(default_factory=list)
    underflow_ops: list[OpError] = field(default_factory=list)
    # the first op whose fp32 output holds inf/NaN while everything it reads was finite
    first_nonfinite_fp32: OpError | None = None

    @property
    def passed(self) -> bool:
        return self.first_divergent is None and not self.overflow_ops

    def __bool__(self) -> bool:
        return self.passed


# Elements compared per chunk: float64 temporaries of a chunk stay at 32 MiB however large the value.
CHUNK_ELEMENTS = 1 << 22


@dataclass
class ValueError_:
    """How far one candidate value (fp16 run) is from its reference (fp32 run).

    Attributes:
        rel_error: max |a - b| / max |b| over the finite entries of b (inf when a is non-finite where b
            is finite; 0 when b has no finite entry).
        overflow: entries with |b| > 65504 (b finite): beyond the fp16 range.
        nonfinite: entries where a is inf/NaN and b is finite.
        underflow: entries of b that are nonzero but below the fp16 normal range, flushed to 0 in a.
        candidate_finite: a has no inf/NaN at all.
        reference_finite: b has no inf/NaN at all.
    """

    rel_error: float
    overflow: int
    nonfinite: int
    underflow: int
    candidate_finite: bool
    reference_finite: bool


def _flat(value: Any) -> np.ndarray:
    arr = (
        value.numpy() if hasattr(value, "numpy") and not isinstance(value, np.ndarray) else np.asarray(value)
    )
    return arr.reshape(-1)


def value_error(candidate: Any, reference: Any) -> ValueError_:
    """Compare two float values (numpy arrays or torch tensors of the same shape), chunk by chunk.

    This is the one fp16 divergence rule: an op has diverged when ``rel_error > DIVERGENCE_RTOL``
    (see :func:`diverged`); ``check``'s divergence search and ``compress``'s fp16 repair both use it.
    """
    # NOTE: numpy, not torch: torch's elementwise ops hand chunks to every thread, which costs 10-40x on a
    # loaded machine (measured: abs of 4M floats 70 ms with 2 threads vs 2 ms with 1); numpy stays on one.
    # float32 is enough: differences of nearby float32/fp16 values are exact or within 1e-7 relative, far
    # below the 1e-2 rule; float64 copies would cost twice the memory and time.
    a_all, b_all = _flat(candidate), _flat(reference)
    diff = scale = 0.0
    overflow = nonfinite = underflow = 0
    a_fin = b_fin = True
    any_finite = False
    with np.errstate(invalid="ignore", over="ignore"):
        for start in range(0, b_all.size, CHUNK_ELEMENTS):
            a = a_all[start : start + CHUNK_ELEMENTS].astype(np.float32, copy=False)
            b = b_all[start : start + CHUNK_ELEMENTS].astype(np.float32, copy=False)
            abs_b = np.abs(b)
            chunk_a_fin, chunk_b_fin = bool(np.isfinite(a).all()), bool(np.isfinite(abs_b).all())
            tiny = (abs_b < FP16_MIN_NORMAL) & (b != 0) & (a == 0)
            if chunk_a_fin and chunk_b_fin:  # the common case: no masks to build
                any_finite = True
                scale = max(scale, float(abs_b.max()))
                if nonfinite == 0:
                    diff = max(diff, float(np.abs(a - b).max()))
                overflow += int(np.count_nonzero(abs_b > FP16_MAX))
                underflow += int(np.count_nonzero(tiny))
                continue
            fin_b, fin_a = np.isfinite(b), np.isfinite(a)
            a_fin &= chunk_a_fin
            b_fin &= chunk_b_fin
            nonfinite += int(np.count_nonzero(~fin_a & fin_b))
            overflow += int(np.count_nonzero((abs_b > FP16_MAX) & fin_b))
            underflow += int(np.count_nonzero(tiny))
            if fin_b.any():
                any_finite = True
                scale = max(scale, float(abs_b[fin_b].max()))
                if nonfinite == 0:
                    diff = max(diff, float(np.abs(a[fin_b] - b[fin_b]).max()))
    if nonfinite:
        rel = math.inf
    elif not any_finite:
        rel = 0.0
    else:
        rel = diff / max(scale, 1e-30)
    return ValueError_(rel, overflow, nonfinite, underflow, a_fin, b_fin)


def diverged(error: ValueError_, tolerance: float = DIVERGENCE_RTOL) -> bool:
    """The fp16 divergence rule: relative error above ``tolerance`` (non-finite where fp32 is finite)."""
    return error.rel_error > tolerance


def op_outputs(program: Any) -> Iterable[tuple[int, Any, str, str | None]]:
    """(index, step, value name, declared dtype) for every output of the program's top-level ops."""
    for i, step in enumerate(program.plan.block.steps):
        for name, dt in zip(step.outputs, step.ctx.output_dtypes):
            yield i, step, name, dt


FLOAT_DTYPES = ("fp16", "fp32", "bf16")


class DivergenceTracker:
    """Accumulates the per-op fp16-vs-fp32 comparison sample by sample, holding no intermediate values.

    Use :meth:`add_sample` (runs both precisions op by op, see :mod:`devicefit.compare.stepwise`) or
    :meth:`add_values` (values already computed), then :meth:`result`.
    """

    def __init__(self, program: Any, tolerance: float = DIVERGENCE_RTOL):
        self.program = program
        self.tolerance = tolerance
        self.entries: dict[str, OpError] = {}
        # Values whose fp16 (fp32) run held inf/NaN: ops reading them only propagate it.
        self.poisoned16: set[str] = set()
        self.poisoned32: set[str] = set()
        self.first_nonfinite_fp32: OpError | None = None
        self.observed_shapes: dict[str, tuple[int, ...]] = {}
        self.samples = 0
        # the current sample's attention mask (True = token), when its data has padding: values at padded
        # positions are undefined in both runs (devicefit.compare.padding) and are not compared
        self.tokens: np.ndarray | None = None
        self.inputs = {spec.name for spec in getattr(program, "inputs", [])}

    def add_values(self, index: int, step: Any, name: str, dtype: str | None, fp16: Any, fp32: Any) -> None:
        """Fold one op output's fp16 and fp32 values (one sample) into the per-op statistics."""
        if self.samples <= 1 and name not in self.observed_shapes and hasattr(fp32, "shape"):
            self.observed_shapes[name] = tuple(int(d) for d in fp32.shape)
        if dtype not in FLOAT_DTYPES or not hasattr(fp16, "shape") or not hasattr(fp32, "shape"):
            return
        entry = self.entries.get(name)
        if entry is None:
            entry = self.entries[name] = OpError(index, step.name, step.op_type, name, 0.0)
            source = step.ctx.input_names.get("x") if step.op_type == "cast" else None
            entry.model_input = source if source in self.inputs else None
        reads = step.reads()  # nested blocks' reads too
        entry.propagated |= any(src in self.poisoned16 for src in reads)
        if tuple(fp16.shape) != tuple(fp32.shape):
            return
        if self.tokens is not None:
            fp16, fp32 = _token_positions(fp16, fp32, self.tokens)
        err = value_error(fp16, fp32)
        entry.rel_error = max(entry.rel_error, err.rel_error)
        if dtype == "fp16":
            entry.overflow += err.overflow
            entry.nonfinite += err.nonfinite
            entry.underflow += err.underflow
        if not err.candidate_finite:
            self.poisoned16.add(name)
        if not err.reference_finite:
            if self.first_nonfinite_fp32 is None and not any(s in self.poisoned32 for s in reads):
                self.first_nonfinite_fp32 = OpError(index, step.name, step.op_type, name, math.inf)
            self.poisoned32.add(name)

    def add_sample(
        self, feeds: dict[str, Any], tokens: np.ndarray | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Run ``feeds`` in fp32 and fp16 op by op, compare every float op output; returns both outputs.

        ``tokens``: the sample's attention mask as bool ``(batch, sequence)`` when it has padding; values with
        a sequence axis are then compared at token positions only.
        """
        from devicefit.compare.stepwise import paired_run

        self.samples += 1
        self.tokens = tokens
        if self.samples == 1:
            self.observed_shapes.update({k: tuple(np.shape(v)) for k, v in feeds.items()})
        outputs: dict[str, Any] = {}
        for paired in paired_run(self.program, feeds, outputs):
            step = paired.step
            a = b = None
            for name, dtype in zip(step.outputs, step.ctx.output_dtypes):
                a, b = paired.fp16.get(name), paired.fp32.get(name)
                if a is not None and b is not None:
                    self.add_values(paired.index, step, name, dtype, a, b)
            # NOTE: drop every reference before the next step runs, or values the runs already freed stay alive
            del paired, a, b
        return outputs["fp32"], outputs["fp16"]

    def result(self) -> Divergence:
        ops = sorted(self.entries.values(), key=lambda o: o.index)
        result = Divergence(ops, self.tolerance)
        result.first_divergent = next((o for o in ops if o.rel_error > self.tolerance), None)
        overflowed = [o for o in ops if o.overflow or (o.nonfinite and not o.propagated)]
        result.overflow_ops = [o for o in overflowed if not self._absorbed(o.value)] if overflowed else []
        result.underflow_ops = [o for o in ops if o.underflow]
        result.first_nonfinite_fp32 = self.first_nonfinite_fp32
        return result

    def _spoiled(self, name: str) -> bool:
        """``name``'s fp16 value is off: overflowed, non-finite where fp32 is finite, or diverged; a value the
        tracker does not compare (booleans, integers) counts as off, since it may carry the overflow on."""
        entry = self.entries.get(name)
        return entry is None or bool(entry.overflow or entry.nonfinite) or entry.rel_error > self.tolerance

    def _absorbed(self, value: str) -> bool:
        """The overflow in ``value`` ends at ops that drop or bound it: every path from it reaches a ``select`` /
        ``clip`` / ``minimum`` / ``maximum`` whose fp16 output is finite and agrees with fp32 (fp16-safe code
        written with ``torch.where``, devicefit's own bfloat16 rounding), or a saturating ``exp`` / ``sigmoid`` /
        ``tanh`` / ``softmax`` that takes a value beyond the fp16 range to the same 0 or 1 fp32 gives
        (``exp(-d2 / 2 sigma^2)`` over pixel distances, NeRF's ``exp(-sigma * 1e10)``), never a program output.

        NOTE: only ops that pick or bound values end it: an ``add`` whose output is within tolerance may only
        dilute a wrong value (a residual around a branch the overflow killed), which remains a finding.
        """
        block = self.program.plan.block
        outputs = set(getattr(block, "outputs", ()))
        readers: dict[str, list[Any]] = {}
        for step in block.steps:
            for src in set(step.reads()):
                readers.setdefault(src, []).append(step)
        seen, todo = {value}, [value]
        while todo:
            name = todo.pop()
            if name in outputs or not readers.get(name):
                return False
            for step in readers[name]:
                if step.op_type in _DROPS and not any(self._spoiled(out) for out in step.outputs):
                    continue
                for out in step.outputs:
                    if out not in seen:
                        seen.add(out)
                        todo.append(out)
        return True


# ops whose finite, agreeing output shows an overflowed input was dropped or bounded, not mixed in: an entry
# beyond ±65504 reaches exp / sigmoid / tanh / softmax's flat tails, where fp32 and fp16 give the same 0 or 1
# (a wrong one, -inf - -inf or +inf in a softmax row, comes out NaN or off and is not absorbed)
_DROPS = frozenset({"select", "clip", "minimum", "maximum", "exp", "sigmoid", "tanh", "softmax"})


def _token_positions(fp16: Any, fp32: Any, tokens: np.ndarray) -> tuple[Any, Any]:
    """Both values at the token positions only, when they have a sequence axis (else unchanged)."""
    from devicefit.compare.padding import sequence_keep

    a, b = _flat(fp16).reshape(fp16.shape), _flat(fp32).reshape(fp32.shape)
    keep = sequence_keep(b, tokens, every_axis=True)
    if keep is None or keep.all():
        return fp16, fp32
    full = np.broadcast_to(keep, b.shape)
    return a[full], b[full]


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
    tracker = DivergenceTracker(program, tolerance)
    for r16, r32 in zip(fp16_runs, fp32_runs):
        tracker.samples += 1
        for index, step, name, dtype in op_outputs(program):
            a, b = r16.get(name), r32.get(name)
            if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
                tracker.add_values(index, step, name, dtype, a, b)
    return tracker.result()


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


def looks_untrained(
    outputs: dict[str, np.ndarray],
    class_axes: Mapping[str, Any] | None = None,
    *,
    user: Mapping[str, int | None] | None = None,
    labelled: str | None = None,
) -> TrainedCheck:
    """Heuristic: near-uniform class scores (high mean entropy) or the same entropy for every sample.

    Only float outputs with a class axis are examined (:func:`devicefit.compare.class_axis.decide`: not hidden
    states, embeddings or boxes, whose softmax entropy says nothing about training), along that axis
    (``class_axes``: output name -> the program head's :class:`~devicefit.compare.class_axis.ClassAxis`), and
    of those only the ones something says are class scores: a name such as ``logits``, a softmax head, rows
    that are already probabilities (non-negative, summing to 1, used as is), the labelled output, or the
    user's ``--class-axis`` (``user``). A linear or conv head alone is no such evidence: an embedding
    projection ends in a Linear too, and its trained features are near-uniform under a softmax.
    """
    from devicefit.compare.class_axis import SCORE_NAME, decide

    for name, arr in outputs.items():
        raw = np.asarray(arr)
        decided = decide(name, raw, (class_axes or {}).get(name), user)
        axis = decided.axis
        if axis is None:  # indices, labels, masks, features are not class scores
            continue
        a = np.moveaxis(raw.astype(np.float64), axis, -1)
        if a.shape[-1] < 2 or not np.isfinite(a).all():
            continue
        rows = a.reshape(-1, a.shape[-1])
        probabilities = bool((rows >= 0).all() and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3))
        says_scores = (
            probabilities
            or name == labelled
            or bool(user and name in user)
            or decided.evidence.startswith("softmax")
            or bool(SCORE_NAME.search(name.lower()))
        )
        if not says_scores:
            continue
        if probabilities:
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
