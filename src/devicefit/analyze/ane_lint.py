"""Neural Engine lint: which ops of an ML Program are likely to fall back to the CPU/GPU, and why.

This is a PREDICTION from published constraints (``ane_rules.py``), not a measurement: Core ML decides
placement on the device, and its rules change with device generation, OS version and tensor sizes.
On a Mac, ``MLComputePlan`` gives the real placement.

Usage::

    from devicefit.analyze import ane_lint
    report = ane_lint.lint("model.mlpackage")
    report.summary.fallback_flops_share, report.summary.transitions
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devicefit.analyze.ane_rules import OP_RULES, PROGRAM_RULES, ProgramFacts, _dtype
from devicefit.analyze.flops import iter_ops, op_cost, resolve_function, shape_of

if TYPE_CHECKING:
    from devicefit.convert.provenance import Origin, Provenance

__all__ = ["DISCLAIMER", "VERDICTS", "Finding", "LintReport", "LintSummary", "OpVerdict", "lint"]

DISCLAIMER = (
    "Prediction from published Neural Engine constraints, not a measurement: Core ML picks the compute "
    "unit on the device, and its rules change with device, OS version and tensor sizes."
)
VERDICTS = {"ne": "likely on the Neural Engine", "maybe": "may fall back", "fallback": "likely fallback"}
# ANE-FP32 on one op of an fp16 program: FLOAT16 conversion was applied, the op was kept in fp32 on purpose
FP32_OP_IN_FP16_FIX = (
    "the program is fp16 but this op was kept in fp32 (--fp32-ops / the FP16ComputePrecision op_selector): "
    "leave it out of that list if fp16 accuracy allows (check with devicefit)"
)


@dataclass
class Finding:
    """One rule that fired: why, where the constraint is published, and what to do."""

    rule: str
    title: str
    severity: str
    reason: str
    source: str
    fix: str


@dataclass
class OpVerdict:
    """The lint verdict of one op (``verdict`` is a key of :data:`VERDICTS`)."""

    index: int
    op_type: str
    name: str
    verdict: str
    flops: int
    findings: list[Finding] = field(default_factory=list)
    origin: Origin | None = None

    @property
    def verdict_text(self) -> str:
        return VERDICTS[self.verdict]

    @property
    def where(self) -> str:
        """PyTorch module, type and line first, the MIL op in parentheses (the MIL name alone if unknown)."""
        from devicefit.convert.provenance import where

        return where(self.origin, self.name)


@dataclass
class LintSummary:
    """Shares of ops and compute likely to fall back, and Neural Engine <-> CPU/GPU transitions.

    When a program rule bars the whole model from the NE (``ne_barred_by``), every op counts as falling back.
    """

    ops: int
    fallback_ops: int
    maybe_ops: int
    flops: int
    fallback_flops: int
    transitions: int
    ne_barred_by: list[str]

    @property
    def fallback_op_share(self) -> float:
        return self.fallback_ops / self.ops if self.ops else 0.0

    @property
    def fallback_flops_share(self) -> float:
        return self.fallback_flops / self.flops if self.flops else 0.0


@dataclass
class LintReport:
    origin: str
    function: str
    ops: list[OpVerdict]
    program: list[Finding]
    summary: LintSummary
    disclaimer: str = DISCLAIMER

    def flagged(self) -> list[OpVerdict]:
        """Ops with at least one finding."""
        return [o for o in self.ops if o.findings]

    def rules_fired(self) -> set[str]:
        return {f.rule for o in self.ops for f in o.findings} | {f.rule for f in self.program}

    def to_dict(self) -> dict[str, Any]:
        s = self.summary
        return {
            "origin": self.origin,
            "function": self.function,
            "disclaimer": self.disclaimer,
            "summary": {
                **asdict(s),
                "fallback_op_share": s.fallback_op_share,
                "fallback_flops_share": s.fallback_flops_share,
            },
            "program": [asdict(f) for f in self.program],
            "ops": [
                {
                    **asdict(o),
                    "origin": o.origin.to_dict() if o.origin else None,
                    "where": o.where,
                    "verdict_text": o.verdict_text,
                }
                for o in self.ops
            ],
        }


def _finding(rule: Any, reason: str) -> Finding:
    return Finding(rule.id, rule.title, rule.severity, reason, rule.source, rule.fix)


def _verdict(findings: list[Finding]) -> str:
    severities = {f.severity for f in findings}
    return "fallback" if "fallback" in severities else "maybe" if "maybe" in severities else "ne"


def _input_features(resolved: Any) -> list[Any]:
    """The input feature descriptions of the resolved function (empty without a spec)."""
    if resolved.spec is None:
        return []
    desc = resolved.spec.description
    for f in desc.functions:
        if f.name == resolved.name:
            desc = f
    return list(desc.input)


def _image_preprocessing(resolved: Any, ops: list[Any]) -> set[int]:
    """ids of the scale/bias ops coremltools inserts after an image input (``ct.ImageType(scale, bias)``).

    They are a ``mul`` then an ``add`` by a constant, chained on the image input, and compute in the image's
    dtype (fp32 for RGB/BGR) whatever the compute precision: neither the model's code nor FLOAT16 changes
    them, and they are one cheap elementwise pass over the input, so flagging them as a fallback with the
    fix "convert with FLOAT16" misleads. Found by structure, not by the names coremltools gives them.
    """
    names = {f.name for f in _input_features(resolved) if f.type.WhichOneof("Type") == "imageType"}
    if resolved.spec is None:  # a pymil function still being converted knows its input types
        from coremltools.converters.mil.input_types import ImageType

        names |= {
            t.name for t in getattr(resolved.function, "input_types", None) or () if isinstance(t, ImageType)
        }
    found: set[int] = set()
    for op in ops:
        x, y = op.inputs.get("x"), op.inputs.get("y")
        if op.op_type not in ("mul", "add") or x is None or y is None or isinstance(x, (list, tuple)):
            continue
        if x.name in names and y.val is not None:
            found.add(id(op))
            names.add(op.outputs[0].name)  # the bias add follows the scale mul
    return found


def _flexible_inputs(resolved: Any) -> tuple[dict[str, str], dict[str, int]]:
    kinds: dict[str, str] = {}
    counts: dict[str, int] = {}
    if resolved.spec is None:  # a bare pymil function: symbolic input dims are all we know
        for name, var in resolved.function.inputs.items():
            if any(d < 0 for d in (shape_of(var) or ())):
                kinds[name] = "range"
        return kinds, counts
    for feat in _input_features(resolved):
        if feat.type.WhichOneof("Type") != "multiArrayType":
            continue
        arr = feat.type.multiArrayType
        flex = arr.WhichOneof("ShapeFlexibility")
        if flex == "shapeRange":
            ranges = [(r.lowerBound, r.upperBound) for r in arr.shapeRange.sizeRanges]
            if any(lo != hi for lo, hi in ranges):
                kinds[feat.name] = "range"
        elif flex == "enumeratedShapes":
            kinds[feat.name] = "enumerated"
            counts[feat.name] = len(arr.enumeratedShapes.shapes)
    return kinds, counts


def _states(function: Any) -> dict[str, tuple[int, ...]]:
    from coremltools.converters.mil.mil import types

    out = {}
    for name, var in function.inputs.items():
        if types.is_state(var.sym_type):
            out[name] = tuple(int(d) for d in var.sym_type.wrapped_type().get_shape())
    return out


def _weight_bytes(resolved: Any, model: Any) -> int:
    """Bytes of the model's weights: the weight files of a package on disk, else the program's constants.

    The fallback counts each ``const`` op once (nested blocks included) at its stored bit width, so
    compressed (sub-byte) weights are not over-counted and constexpr inputs are not counted twice.
    """
    if isinstance(model, (str, Path)) and Path(model).is_dir():
        weights = Path(model) / "Data" / "com.apple.CoreML" / "weights"
        if weights.is_dir():
            return sum(p.stat().st_size for p in weights.rglob("*") if p.is_file())
    from devicefit.analyze.size import const_bytes

    return sum(const_bytes(op) for op in _const_ops(resolved.function))


def _const_ops(block: Any) -> Iterator[Any]:
    for op in block.operations:
        if op.op_type == "const":
            yield op
        for inner in op.blocks:
            yield from _const_ops(inner)


def _fp32_program(ops: list[Any]) -> bool:
    """True when the program computes in fp32: float-typed op outputs and no non-cast op producing fp16.

    Integer outputs (argmax, shape, indices) say nothing about the precision, so they do not hide it.
    """
    dtypes = {_dtype(v) for op in ops if op.op_type != "cast" for v in op.outputs}
    return bool(dtypes & {"fp32", "fp64"}) and "fp16" not in dtypes


def lint(
    program: Any,
    model_bytes: int | None = None,
    function: str | None = None,
    provenance: Provenance | None = None,
) -> LintReport:
    """Predict Neural Engine placement for every op of ``program``.

    Args:
        program: a ``.mlpackage``/``.mlmodel`` path, an MLModel, an interp Program, or a pymil Program/Function.
        model_bytes: model size for the 1 GB rule (default: weight file sizes, else constant bytes).
        function: the function of a multi-function model (default: its default function).
        provenance: MIL name -> PyTorch origin (default: what the package's metadata holds, if anything).

    Returns:
        A :class:`LintReport`: per-op verdicts with reasons, sources and fixes, program-level findings and
        a summary. It is a prediction from published constraints, not a measurement.
    """
    resolved = resolve_function(program, function)
    fn = resolved.function
    if provenance is None and resolved.spec is not None:
        from devicefit.convert.provenance import load_from_package

        provenance = load_from_package(resolved.spec)
    ops: list[OpVerdict] = []
    # constexpr ops are weight decompression: compile-time work
    mil_ops = [op for op in iter_ops(fn) if not op.op_type.startswith("constexpr_")]
    preprocessing = _image_preprocessing(resolved, mil_ops)
    fp32_program = _fp32_program([op for op in mil_ops if id(op) not in preprocessing])
    for op in mil_ops:
        findings = []
        if id(op) not in preprocessing:  # coremltools' own image scale/bias: see _image_preprocessing
            findings = [_finding(r, reason) for r in OP_RULES if (reason := r.check(op)) is not None]
        if not fp32_program:  # an fp32 op of an fp16 program: never advise the FLOAT16 already applied
            findings = [replace(f, fix=FP32_OP_IN_FP16_FIX) if f.rule == "ANE-FP32" else f for f in findings]
        name = op.outputs[0].name if op.outputs else op.name
        origin = provenance.find(name, op.name) if provenance is not None else None
        ops.append(
            OpVerdict(len(ops), op.op_type, name, _verdict(findings), op_cost(op).flops, findings, origin)
        )
    kinds, counts = _flexible_inputs(resolved)
    facts = ProgramFacts(
        function=fn,
        model_bytes=model_bytes if model_bytes is not None else _weight_bytes(resolved, program),
        flexible_inputs=kinds,
        enumerated_counts=counts,
        states=_states(fn),
    )
    program_findings = [_finding(r, reason) for r in PROGRAM_RULES for reason in r.check(facts)]
    if fp32_program:
        program_findings.append(
            Finding(
                "ANE-FP32",
                "fp32-typed program",
                "fallback",
                "the whole program is typed fp32 (compute_precision=FLOAT32): the NE is barred",
                "coremltools docs: typed execution",
                "convert with compute_precision=ct.precision.FLOAT16 (check accuracy with devicefit)",
            )
        )
    return LintReport(resolved.origin, resolved.name, ops, program_findings, _summary(ops, program_findings))


def _summary(ops: list[OpVerdict], program: list[Finding]) -> LintSummary:
    barred = sorted({f.rule for f in program if f.severity == "fallback"})
    total_flops = sum(o.flops for o in ops)
    if barred:
        return LintSummary(len(ops), len(ops), 0, total_flops, total_flops, 0, barred)
    fallback = [o for o in ops if o.verdict == "fallback"]
    placement = [o.verdict == "fallback" for o in ops]
    transitions = sum(1 for a, b in itertools.pairwise(placement) if a != b)
    return LintSummary(
        ops=len(ops),
        fallback_ops=len(fallback),
        maybe_ops=sum(1 for o in ops if o.verdict == "maybe"),
        flops=total_flops,
        fallback_flops=sum(o.flops for o in fallback),
        transitions=transitions,
        ne_barred_by=[],
    )
