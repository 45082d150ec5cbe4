"""fp16 repair: the smallest set of ops to keep in fp32 so an fp16 model meets its budget.

1. Run the fp32 program and the all-fp16 program with intermediates; the first op whose fp16 value is
   non-finite or far from its fp32 value marks where trouble starts: ops before it stay fp16.
2. Divide and conquer over the remaining ops (delta debugging): keep a half in fp32 if that alone passes,
   else minimise each half with the other kept. Every test applies coremltools' own
   ``FP16ComputePrecision(op_selector=...)`` pass to the program and runs it with the interpreter in fp16
   (:class:`MixedPrecision`: no package re-emit per candidate).
3. Verify the final set by re-running, and emit the conversion option that does it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from devicefit.compare.divergence import diverged, value_error
from devicefit.compress.budget import Budget, measure, meets
from devicefit.compress.evaluate import run_samples
from devicefit.compress.verbs import as_mlmodel, fp16, quiet
from devicefit.compress.weights import _main, _ops
from devicefit.convert.provenance import Origin, where


@dataclass
class Fp16Repair:
    """The outcome of :func:`repair_fp16`.

    Attributes:
        fp32_ops: op names to keep in fp32 (empty when fp16 already meets the budget).
        fp16_metric: the budget metric of the all-fp16 model.
        repaired_metric: the metric with ``fp32_ops`` in fp32 (re-measured on the rebuilt model).
        threshold: the bound the metric had to reach.
        passed: the repaired model meets the budget.
        first_divergent: the first op whose fp16 value diverged (None if none did).
        evaluations: models built and run during the search.
        mlmodel: the repaired model.
        origins: op name -> the PyTorch module it came from (ops the package has no provenance for are absent).
    """

    fp32_ops: list[str]
    fp16_metric: float
    repaired_metric: float
    threshold: float
    passed: bool
    first_divergent: str | None
    evaluations: int
    mlmodel: Any = field(default=None, repr=False)
    origins: dict[str, Origin] = field(default_factory=dict)

    def where(self) -> list[str]:
        """The ops kept in fp32 as a user reads them: PyTorch module, type and line first, the MIL op after."""
        return [where(self.origins.get(name), name) for name in self.fp32_ops]

    def convert_options(self, target: str = "iOS18") -> Any:
        """devicefit ``ConvertOptions`` that convert the torch source this way."""
        from devicefit.convert import ConvertOptions

        if not self.fp32_ops:
            return ConvertOptions(target=target, precision="fp16")
        return ConvertOptions(target=target, precision="mixed", fp32_ops=list(self.fp32_ops))

    def coremltools_snippet(self) -> str:
        """The ``ct.convert`` argument that keeps the same ops in fp32."""
        names = ", ".join(repr(n) for n in self.fp32_ops)
        return (
            f"compute_precision=ct.transform.FP16ComputePrecision("
            f"op_selector=lambda op: op.name not in {{{names}}})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "fp32_ops": self.fp32_ops,
            "fp16_metric": _finite(self.fp16_metric),
            "repaired_metric": _finite(self.repaired_metric),
            "threshold": self.threshold,
            "passed": self.passed,
            "first_divergent": self.first_divergent,
            "where": self.where(),
            "evaluations": self.evaluations,
            "coremltools": self.coremltools_snippet(),
        }


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def compute_ops(mlmodel: Any) -> list[str]:
    """Names of the program's float compute ops, in order (consts and casts excluded)."""
    names = []
    for op in _ops(_main(mlmodel)):
        if op.op_type in ("const", "cast") or op.op_type.startswith("constexpr_"):
            continue
        if any(_is_float(v) for v in op.outputs):
            names.append(op.name)
    return names


def _is_float(var: Any) -> bool:
    from coremltools.converters.mil.mil import types

    return bool(types.is_float(var.dtype))


class MixedPrecision:
    """Builds the fp16 program with some ops kept in fp32 without re-emitting a package.

    Applies coremltools' own ``FP16ComputePrecision`` pass to a copy of the fp32 pymil program and compiles
    it for the interpreter: the same program ``ct.convert`` would produce up to cleanup passes that do
    not change values (measured bit-identical outputs), ~15x faster than a re-emit. The search scores
    candidates with it; the chosen set is verified on a real re-emitted package.
    """

    def __init__(self, mlmodel: Any):
        from devicefit.interp.program import load_pymil

        self._source = mlmodel
        prog, self._spec, self._origin = load_pymil(mlmodel)
        self._function = "main" if "main" in prog.functions else next(iter(prog.functions))

    def program(self, keep_fp32: frozenset[str]) -> Any:
        """The interpreter program computing in fp16 except the ops named (or typed) in ``keep_fp32``."""
        from coremltools.converters.mil.mil.passes.defs.quantization import FP16ComputePrecision

        from devicefit.interp.program import compile_function, load_pymil
        from devicefit.interp.run import Program

        # NOTE: a fresh load, not copy.deepcopy of one loaded program: deepcopy recurses through the
        # op/var graph and exceeds Python's recursion limit on deep models (a 2-layer BART did).
        prog, _, _ = load_pymil(self._source)
        with quiet():
            FP16ComputePrecision(
                op_selector=lambda op: op.name not in keep_fp32 and op.op_type not in keep_fp32
            )(prog)
        plan = compile_function(prog, self._spec, self._function)
        return Program(plan, sorted(prog.functions), self._origin, self._spec)


def first_divergent(fp32_model: Any, fp16_model: Any, feeds: Sequence[dict[str, np.ndarray]]) -> str | None:
    """The first op (fp32 program name) whose fp16 output diverged (the rule of :func:`.divergence.diverged`).

    ``fp16_model`` is an ``MLModel`` or an already loaded interpreter program.
    """
    from devicefit import interp

    p32 = interp.load(fp32_model)
    p16 = fp16_model if hasattr(fp16_model, "plan") else interp.load(fp16_model)
    order = compute_ops(fp32_model)
    outputs = {op.name: [v.name for v in op.outputs] for op in _ops(_main(fp32_model))}
    for feed in feeds[:4]:
        ref = p32.run(feed, intermediates=True)
        got = p16.run(feed, precision="fp16", intermediates=True)
        for name in order:
            for value in outputs.get(name, []):
                other = got.get(f"{value}_cast_fp16", got.get(value))
                if other is None or value not in ref:
                    continue
                a, b = np.asarray(ref[value]), np.asarray(other)
                if a.shape != b.shape or a.dtype.kind != "f" or b.dtype.kind != "f":
                    continue
                if diverged(value_error(b, a)):
                    return name
    return None


def repair_fp16(
    model: Any,
    feeds: Sequence[dict[str, np.ndarray]],
    budget: Budget,
    labels: np.ndarray | None = None,
    reference: dict[str, np.ndarray] | None = None,
) -> Fp16Repair:
    """Find the fewest ops to keep in fp32 so the fp16 model meets ``budget``.

    Args:
        model: the fp32 ML Program (``MLModel`` or path).
        feeds: calibration samples.
        budget: the bound; a relative accuracy budget is taken against the fp32 model.
        labels: labels for an accuracy budget.
        reference: stacked fp32 outputs (computed when None).
    """
    from devicefit import interp

    mlmodel = as_mlmodel(model)
    p32 = interp.load(mlmodel)
    names = [o.name for o in p32.outputs]
    reference = reference if reference is not None else run_samples(p32, feeds, "fp32")
    baseline = measure(budget.metric, reference, reference, labels, names[0]) if budget.relative else None
    threshold = budget.threshold(baseline)
    cache: dict[frozenset[str], tuple[float, Any]] = {}
    mixed = MixedPrecision(mlmodel)

    def score(keep: frozenset[str]) -> tuple[float, Any]:
        if keep not in cache:
            candidate = mixed.program(keep)
            out = run_samples(candidate, feeds, "fp16")
            value = measure(budget.metric, out, reference, labels, names[0])
            cache[keep] = (value if not math.isnan(value) else -math.inf, candidate)
        return cache[keep]

    def built(keep: Sequence[str]) -> Any:
        with quiet():
            return fp16(mlmodel, keep_fp32=keep)

    def ok(keep: frozenset[str]) -> bool:
        return meets(score(keep)[0], threshold)

    fp16_metric, fp16_program = score(frozenset())
    if meets(fp16_metric, threshold):
        return Fp16Repair([], fp16_metric, fp16_metric, threshold, True, None, len(cache), built([]))
    origins = op_origins(mlmodel, p32)
    order = compute_ops(mlmodel)
    start_name = first_divergent(mlmodel, fp16_program, feeds)
    start = order.index(start_name) if start_name in order else 0
    candidates = order[start:]
    if not ok(frozenset(candidates)):
        candidates = order
        if not ok(frozenset(candidates)):
            value, _ = score(frozenset(candidates))
            return Fp16Repair(
                candidates,
                fp16_metric,
                value,
                threshold,
                False,
                start_name,
                len(cache),
                built(candidates),
                {n: origins[n] for n in candidates if n in origins},
            )

    def minimize(cands: list[str], fixed: frozenset[str]) -> list[str]:
        if ok(fixed):
            return []
        if len(cands) == 1:
            return cands
        half = len(cands) // 2
        a, b = cands[:half], cands[half:]
        if ok(fixed | set(a)):
            return minimize(a, fixed)
        if ok(fixed | set(b)):
            return minimize(b, fixed)
        kept_a = minimize(a, fixed | set(b))
        return kept_a + minimize(b, fixed | set(kept_a))

    keep = minimize(candidates, frozenset())
    # Verify on a really re-emitted package (not the emulated candidates) so the number is a real re-run.
    rebuilt = built(keep)
    out = run_samples(interp.load(rebuilt), feeds, "fp16")
    verified = measure(budget.metric, out, reference, labels, names[0])
    return Fp16Repair(
        keep,
        fp16_metric,
        verified,
        threshold,
        meets(verified, threshold),
        start_name,
        len(cache) + 1,
        rebuilt,
        {n: origins[n] for n in keep if n in origins},
    )


def op_origins(mlmodel: Any, program: Any) -> dict[str, Origin]:
    """Op name -> PyTorch origin, from the provenance in ``mlmodel``'s metadata (by the op's outputs)."""
    from devicefit.convert.provenance import load_from_package

    provenance = load_from_package(mlmodel)
    if provenance is None:
        return {}
    found: dict[str, Origin] = {}
    for step in program.plan.block.steps:
        origin = provenance.find(*step.outputs, step.name)
        if origin is not None:
            found[step.name] = origin
    return found
