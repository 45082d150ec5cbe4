"""The fix, computed: when fp16 compute fails, the fewest ops to keep in fp32 (``compress``'s fp16 repair),
named as PyTorch modules, as a ready ``--fp32-ops`` argument and coremltools ``op_selector``, and verified
by re-running the repaired model against PyTorch."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

# cosine >= 0.9995 between fp16 and fp32 outputs is ~30 dB of SNR, the compute question's bound
# (1 - cos ~ noise / (2 signal) for small noise): the repair aims at what the verdict checks.
REPAIR_COSINE = 0.9995
# When the repaired model meets the cosine bound but still fails the check's own gates (per-pixel argmaxes
# flipped at cosine 0.9999: a cosine over a whole output cannot see a few flipped positions), the repair is
# run again at a tighter bound (each step ~10 dB more), until the verification passes.
TIGHTER_COSINES = (0.99995, 0.999995)
# the repair re-runs the model once per candidate set: a few samples are enough to find the set, and
# the verification below runs the repaired model on every sample
REPAIR_SAMPLES = 16


@dataclass
class Fp32Op:
    """One op the fix keeps in fp32.

    Attributes:
        name: its MIL name in the fp32 conversion (what ``--fp32-ops`` takes).
        origin: ``module (Type) at file:line`` from the conversion's provenance (None when unknown).
    """

    name: str
    origin: str | None = None

    @property
    def label(self) -> str:
        return f"{self.origin} ({self.name})" if self.origin else self.name


@dataclass
class Fp16Fix:
    """The fp16 repair as ``check`` reports it.

    Attributes:
        ops: ops to keep in fp32, in program order (empty when fp16 already passes the repair bound).
        passed: the repaired model meets the repair bound (cosine vs the fp32 run >= ``threshold``).
        metric_before: cosine of the all-fp16 model vs fp32 on the repair samples.
        metric_after: the same for the repaired model (re-measured on a rebuilt model).
        threshold: the bound.
        verified: the repaired model emulating fp16 vs PyTorch on every sample (a Comparison).
        evaluations: models built and run by the search.
        seconds: time the repair took.
    """

    ops: list[Fp32Op]
    passed: bool
    metric_before: float
    metric_after: float
    threshold: float
    verified: Any = None
    evaluations: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def cli(self) -> str:
        """The ``devicefit check`` / ``convert`` arguments that apply the fix."""
        return "--precision mixed --fp32-ops " + " ".join(o.name for o in self.ops)

    @property
    def op_selector(self) -> str:
        """The coremltools argument that applies the fix."""
        names = ", ".join(repr(o.name) for o in self.ops)
        return (
            "compute_precision=ct.transform.FP16ComputePrecision("
            f"op_selector=lambda op: op.name not in {{{names}}})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ops": [{"name": o.name, "origin": o.origin} for o in self.ops],
            "passed": self.passed,
            "metric": "cosine",
            "metric_before": self.metric_before,
            "metric_after": self.metric_after,
            "threshold": self.threshold,
            "cli": self.cli,
            "op_selector": self.op_selector,
            "evaluations": self.evaluations,
            "seconds": self.seconds,
            "notes": list(self.notes),
        }


def _provenance(mlmodel: Any, source: Any) -> Any:
    """The conversion's provenance (module, type, file:line per MIL value), None when unavailable."""
    from devicefit.convert import provenance

    try:
        # devicefit's conversions store it in the package metadata; collect it from the op scopes otherwise
        return provenance.load_from_package(mlmodel) or provenance.collect(mlmodel, source)
    except Exception:  # NOTE: naming is a convenience; the fix itself stands without it
        return None


def _origin(prov: Any, name: str, outputs: dict[str, list[str]]) -> str | None:
    if prov is None:
        return None
    found = prov.find(*outputs.get(name, []), name)
    return None if found is None else str(found.label())


def fp16_fix(
    fp32_mlmodel: Any,
    feeds: list[dict[str, Any]],
    reference: dict[str, Any] | None,
    labels: Any,
    source: Any = None,
    overflow_ops: list[str] | None = None,
) -> Fp16Fix:
    """Find and verify the fewest ops to keep in fp32.

    Args:
        fp32_mlmodel: an fp32 conversion of the model (op names there are what ``--fp32-ops`` takes).
        feeds: samples as the program takes them (every one is used for the verification).
        reference: PyTorch's stacked outputs on ``feeds`` (None: verified against the fp32 run).
        labels: labels of ``feeds`` (task accuracy in the verification), or None.
        source: the model source, for provenance.
        overflow_ops: fp16 program ops whose output overflowed (the check's divergence search); when the
            outputs already meet the cosine bound, the fix keeps those (and any the overflow moves to) in fp32.
    """
    from devicefit import interp
    from devicefit.compress.budget import Budget
    from devicefit.compress.evaluate import run_samples
    from devicefit.compress.repair import repair_fp16
    from devicefit.compress.weights import _main, _ops

    t0 = time.perf_counter()
    prov = _provenance(fp32_mlmodel, source)
    outputs = {op.name: [v.name for v in op.outputs] for op in _ops(_main(fp32_mlmodel))}
    evaluations = 0
    against_fp32 = reference is None  # no PyTorch reference: verified against the package's fp32 run
    tried: list[float] = []  # bounds whose repair the check's own gates refused
    for threshold in (REPAIR_COSINE, *TIGHTER_COSINES):
        budget = Budget("cosine", threshold, text=f"cosine>={threshold}")
        found = repair_fp16(fp32_mlmodel, feeds[:REPAIR_SAMPLES], budget)
        evaluations += found.evaluations
        ops = [Fp32Op(name, _origin(prov, name, outputs)) for name in found.fp32_ops]
        fix = Fp16Fix(ops, found.passed, found.fp16_metric, found.repaired_metric, found.threshold)
        if found.mlmodel is not None:
            if against_fp32 and reference is None:  # the fp32 run, once for every bound tried
                reference = run_samples(interp.load(fp32_mlmodel), feeds, "fp32")
            _verify(found.mlmodel, fix, feeds, reference, labels, against_fp32)
        # we are here because fp16 failed the check: an empty set, or a set the verification refuses, is
        # no fix yet; a bound the repair cannot meet even with every op in fp32 will not be met tighter
        unverified = not fix.ops or (fix.verified is not None and not fix.verified.passed)
        if not (found.passed and unverified):
            break
        tried.append(threshold)
    if tried and fix.threshold != tried[-1]:
        fix.notes.append(
            f"at cosine>={tried[-1]:g} the repaired model still failed the check, so the repair tightened its "
            f"bound to cosine>={fix.threshold:g}"
        )
    if not fix.ops and fix.passed and overflow_ops:
        keep = overflow_keep(fp32_mlmodel, feeds, overflow_ops)
        if keep:
            from devicefit.compress.verbs import fp16

            if against_fp32 and reference is None:
                reference = run_samples(interp.load(fp32_mlmodel), feeds, "fp32")
            _verify(fp16(fp32_mlmodel, keep_fp32=keep), fix, feeds, reference, labels, against_fp32)
            fix.passed = fix.verified is not None and fix.verified.passed
            fix.ops = [Fp32Op(name, _origin(prov, name, outputs)) for name in keep]
            fix.notes.append(
                "the outputs met the cosine bound, so the ops kept in fp32 are the ones that overflowed in fp16 "
                "(and those the overflow moved to once they were kept)"
            )
            evaluations += 1
    fix.evaluations = evaluations
    if prov is None:
        fix.notes.append("module names need the conversion's provenance; MIL op names are given")
    fix.seconds = time.perf_counter() - t0
    return fix


def _verify(mlmodel: Any, fix: Fp16Fix, feeds: list[dict[str, Any]], reference: Any, labels: Any,
            against_fp32: bool) -> None:  # fmt: skip
    """Set ``fix.verified``: the repaired package ``mlmodel`` emulating fp16 on every sample, judged like the
    check judges (dense outputs per position, label outputs by agreement)."""
    import numpy as np

    from devicefit import interp
    from devicefit.compare.class_axis import head_axes, index_outputs
    from devicefit.compare.padding import find_padding
    from devicefit.compare.validate import compare
    from devicefit.compress.evaluate import run_samples

    repaired = interp.load(mlmodel)
    got = run_samples(repaired, feeds, "fp16")
    axes, labelled = head_axes(repaired), index_outputs(repaired)
    # as the check compares: positions the attention mask marks as padding are left out (PyTorch fills a
    # fully masked row differently from the program, and no app reads it)
    padding = find_padding(feeds)
    keep = None if padding is None else {**padding.keeps_stacked(got), **padding.keeps_stacked(reference)}
    if against_fp32:
        # outputs the program types as integers are ids / counts (check/numerics.py: discrete_outputs)
        discrete = {name for name, value in got.items() if np.asarray(value).dtype.kind in "biu"}
        fix.verified = compare(
            "compute", reference, got, "interp-fp32", class_axes=axes, index_outputs=labelled, keep=keep,
            discrete=discrete,
        )  # fmt: skip
    else:
        fix.verified = compare(
            "fp16", reference, got, "pytorch", labels, class_axes=axes, index_outputs=labelled, keep=keep
        )
    fix.verified.samples = len(feeds)


# the fp16 pass renames a value it types fp16 ``<name>_cast_fp16``; the op keeps the fp32 conversion's name
_FP16_SUFFIX = "_cast_fp16"
OVERFLOW_ROUNDS = 8


def overflow_keep(fp32_mlmodel: Any, feeds: list[dict[str, Any]], overflow_ops: list[str]) -> list[str]:
    """Ops to keep in fp32 so no value overflows in fp16 on the first samples; empty when that is not found.

    Starts from the ops that overflowed; keeping one in fp32 can move the overflow to its reader (x**2 kept,
    then its mean overflows), so each round adds the ops whose fp16 outputs still turn inf/NaN.
    """
    import numpy as np

    from devicefit.compress.repair import MixedPrecision, compute_ops

    order = compute_ops(fp32_mlmodel)
    known = set(order)
    keep = {n for n in (o.removesuffix(_FP16_SUFFIX) for o in overflow_ops) if n in known}
    if not keep:
        return []
    mixed = MixedPrecision(fp32_mlmodel)
    for _ in range(OVERFLOW_ROUNDS):
        program = mixed.program(frozenset(keep))
        steps = program.plan.block.steps
        readers: dict[str, list[str]] = {}
        for step in steps:
            for read in step.ctx.input_names.values():
                if isinstance(read, str):
                    readers.setdefault(read, []).append(step.name)
        more: set[str] = set()
        for feed in feeds[:4]:
            values = program.run(feed, precision="fp16", intermediates=True)
            for step in steps:
                for value in step.outputs:
                    a = values.get(value)
                    if not (isinstance(a, np.ndarray) and a.dtype.kind == "f" and not np.isfinite(a).all()):
                        continue
                    own = step.name.removesuffix(_FP16_SUFFIX)
                    # a cast the fp16 pass put after a kept op overflows: its readers must stay in fp32 too
                    names = (
                        [own]
                        if own in known
                        else [r.removesuffix(_FP16_SUFFIX) for r in readers.get(value, [])]
                    )
                    more.update(n for n in names if n in known and n not in keep)
        if not more:
            return [n for n in order if n in keep]
        keep |= more
    return []
