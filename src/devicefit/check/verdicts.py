"""Stage 6: verdicts (pass / warn / fail / skipped, with the reason a user reads) from the measurements.

The report adds the ``size`` and ``neural_engine`` verdicts (they are formatted with its units and device
sections); every other verdict is decided here, so the CLI's exit code and the report agree.
"""

from __future__ import annotations

import re
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


def _mistyped(found: list[dict[str, Any]]) -> Verdict:
    """WARN: values computed with another shape than the program declares (check/declared.py).

    NOTE: a warning, not a failure: the interpreter's outputs are right and some devices may cope; nothing
    shows that every device fails such a program.
    """
    first = found[0]
    shape = "x".join(map(str, first["declared"])) or "scalar"
    computed = "x".join(map(str, first["computed"])) or "scalar"
    more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
    return Verdict(
        WARN,
        f"converted, but the program declares a {shape} value where it computes {computed}: {first['op']} at "
        f"{first['where']}{more}; a device plans from the declared shape and may compute another one there or "
        "refuse to load the model: test it on a device (devicefit profile --engine coreml on a Mac), and report "
        "it as a conversion bug naming that line, or rewrite the line with operands expanded to the result's "
        "shape",
    )


# coremltools' assertion when an output is a model input itself (``return x, self.fc(x)``)
_RETURNED_INPUT = re.compile(
    r"Main block's input name, '([^']+)', is different from its corresponding var's name"
)


def _convert(r: Any) -> Verdict:
    verdict = _converted(r)
    renamed = r.extras.get("renamed_inputs")
    if verdict.status != FAIL and renamed:
        # NOTE: the app feeds the Core ML model by its own names: one it does not expect stops the prediction
        shown = ", ".join(f"{a!r} is {b!r}" for a, b in renamed.items())
        return Verdict(
            verdict.status,
            f"{verdict.reason}; the Core ML model's input {shown} (coremltools renames an input called by a word "
            "Core ML reserves): an app passes it by that name, or rename the forward() argument",
        )
    return verdict


def _converted(r: Any) -> Verdict:
    if r.convert.ok and r.extras.get("declared_type_mismatches"):
        return _mistyped(r.extras["declared_type_mismatches"])
    if not r.convert.ok and r.extras.get("quantized_modules"):
        # NOTE: their ops' generic advice (rewrite with supported ops) is wrong here: the fix is upstream
        unsupported = r.convert.unsupported or []
        first = f" (first op without a translation: {_op_at(unsupported[0])})" if unsupported else ""
        return Verdict(FAIL, r.extras["quantized_modules"] + first)
    if not r.convert.ok:
        unsupported = r.convert.unsupported or []
        if unsupported:
            shown = ", ".join(_op_at(u) for u in unsupported[:3])
            more = f" (+{len(unsupported) - 3} more)" if len(unsupported) > 3 else ""
            return Verdict(
                FAIL, f"{len(unsupported)} unsupported op(s): {shown}{more} (what to do: see below)"
            )
        error = r.convert.error or "conversion failed"
        returned = _RETURNED_INPUT.search(error)
        if returned:
            return Verdict(
                FAIL,
                f"forward returns its input {returned.group(1)!r} unchanged as an output, which a Core ML program "
                "cannot (coremltools: AssertionError: Main block's input name ... is different from its "
                "corresponding var's name); drop it from forward's outputs: the app already holds that input",
            )
        return Verdict(FAIL, error.splitlines()[0])
    if r.convert.rescued:
        # devicefit's own translations of ops coremltools lacks or mistranslates: the numerics below validate them
        from devicefit.convert.rescue import RESCUES

        overrides = {n for e in RESCUES.values() if e.override for n in (e.op, *e.aliases)}
        fixed = [op for op in r.convert.rescued if op in overrides]
        added = [op for op in r.convert.rescued if op not in fixed]
        parts = []
        if added:
            parts.append(f"{', '.join(added)} (coremltools has no translation)")
        if fixed:
            parts.append(f"{', '.join(fixed)} (coremltools' own mishandles the case)")
        return Verdict(
            PASS,
            f"converted; devicefit's own translations used for {'; '.join(parts)}, checked against PyTorch by "
            "the numerics below",
        )
    return Verdict(PASS, "converted")


_LABELS = {
    "conversion_fidelity": "conversion",
    "weight_storage": "fp16 weights",
    "compute_precision": "fp16 compute",
}


def _where(r: Any, op: Any) -> str:
    """``module (Type) at file:line (mil_name)`` for an op finding (the MIL name and type alone if unknown)."""
    from devicefit.compare.divergence import op_place
    from devicefit.convert.provenance import load_from_package

    prov = None
    if r.program is not None:
        try:
            prov = load_from_package(r.program)
        except Exception:  # NOTE: naming is a convenience: never let it hide the verdict
            prov = None
    origin, text = op_place(op, prov)
    return text if origin is not None or getattr(op, "model_input", None) else f"{op.op} ({op.op_type})"


def _discrete_loss(r: Any, comparison: Any) -> str:
    """``; output's integers differ ... where round at net.py:9 computes them: ...`` for a failing exact match.

    NOTE: rounded scores, thresholded masks and argmax ids move only where a float value sits at the boundary
    (x.5, the threshold, a near-tie), so no float op diverges and the verdict named nothing to look at.
    """
    failing = [(o, m) for o, k, m in comparison.failing() if k == "exact_match"]
    if not failing or r.program is None:
        return ""
    output, m = failing[0]
    from devicefit.compare.class_axis import source_op
    from devicefit.convert.provenance import load_from_package, where

    step = source_op(r.program, output)
    if step is None:
        return ""
    try:
        prov = load_from_package(r.program)
    except Exception:  # NOTE: naming is a convenience: never let it hide the verdict
        prov = None
    origin = prov.find(*step.outputs, step.name) if prov is not None else None
    return (
        f"; {m.details.get('mismatched', '?')} of {m.details.get('elements', '?')} integers / mask values of "
        f"{output} differ, computed by {step.op_type} at {where(origin, step.outputs[0])}: values it reads sit at "
        "a rounding or threshold boundary that fp16 moves; keep what feeds it in fp32, or return the float "
        "values and round or threshold them in app code"
    )


def _moved(r: Any) -> str:
    """Each question's headline: ``conversion SNR 98.1 dB, fp16 weights SNR 45.2 dB, fp16 compute ...``."""
    parts = []
    for name, label in _LABELS.items():
        q = r.questions.get(name)
        if q is not None and q.comparison is not None:
            parts.append(f"{label} {q.comparison.headline()}")
    return ", ".join(parts)


def _numerics(r: Any) -> Verdict:
    from devicefit.check.numerics import COMPUTE, FIDELITY, STORAGE

    failure = r.extras.get("program_failure")
    if failure:
        return Verdict(
            FAIL,
            f"conversion problem: the converted program cannot run on inputs PyTorch accepts; {failure['where']} "
            f"fails: {failure['error']}: the converter made an inconsistent program of that line; rewrite it with "
            "plain tensor ops (no packed sequences, Python lists or sizes read from tensor values)",
        )
    if r.fp16 is None:
        why = "every validation sample holds NaN/inf" if r.bad_samples else "the program did not run"
        return Verdict(SKIPPED, why)
    moved = _moved(r)
    also = f" ({moved})" if moved else ""
    random = r.extras.get("randomness")
    if random:
        return _random(random, also)
    fid, sto, com = (r.questions.get(k) for k in (FIDELITY, STORAGE, COMPUTE))
    div = r.divergence
    unsafe = r.extras.get("unsafe_constants") or []
    if unsafe:
        c = unsafe[0]
        more = f" (+{len(unsafe) - 1} more)" if len(unsafe) > 1 else ""
        also += f"; constant {c['constant']} = {c['value']} is beyond the fp16 range{more} (see warnings)"
    if fid is not None and fid.passed is False:
        nonfinite = div.first_nonfinite_fp32 if div is not None else None
        where = f"; the fp32 run first produces inf/NaN at {_where(r, nonfinite)}" if nonfinite else ""
        traced = r.convert.trace_warnings
        if traced:
            where += (
                f"; likely cause: tracing froze a Python-side value at {traced[0]}"
                f"{f' (+{len(traced) - 1} more)' if len(traced) > 1 else ''}: write data-dependent branches "
                "with tensor ops (torch.where), or script that part"
            )
        first = r.extras.get("conversion_divergence")
        eager = r.extras.get("export_divergence")
        # NOTE: a value tracing froze (named just above) is the more specific cause when torch.export froze it too
        if eager and not traced:
            near = f" near {first['where']}" if first else ""
            return Verdict(
                FAIL,
                "PyTorch's own graph differs from eager PyTorch, not a converter bug: torch.export of the model "
                f"differs from eager by relative error {eager['eager_error']:.3g} and the converted program "
                f"follows the exported graph ({eager['converted_error']:.2g}){near}: an in-place write that "
                "reads what it writes (y[..., 1:] += y[..., :-1]) runs in eager only; clone() the source or "
                f"write it out of place{also}",
            )
        if first:
            where += (
                f"; first differs from PyTorch at {first['where']} ({first['value']}, relative error "
                f"{first['relative_error']:.3g}): look at that line and what it reads (integers beyond int32, an "
                "argument the converter ignored)"
            )
        return Verdict(
            FAIL, f"conversion problem: {fid.measured_on}: {fid.comparison.headline()}{where}{also}"
        )
    if fid is not None and fid.passed is None and r.fp32 is not None and not r.fp32.passed:
        return Verdict(FAIL, f"fp32 run differs from PyTorch and no fp32 conversion was possible{also}")
    if sto is not None and sto.passed is False:
        first = r.extras.get("storage_divergence")
        where = (
            f"; first differs from PyTorch at {first['where']} ({first['value']}, relative error "
            f"{first['relative_error']:.3g}): the weights or constants that line reads lose too much when stored"
            if first
            else ""
        )
        rewritten = r.extras.get("fp16_constant_fixes") or []
        if rewritten:
            # NOTE: the fp16-safe pass maps constants past +-65504 to +-32752, made for mask fills: a scale of
            # 1e5 stored so shrinks the output 3x, and the verdict said only "lose too much when stored"
            more = f" (+{len(rewritten) - 1} more)" if len(rewritten) > 1 else ""
            where += (
                f"; a constant beyond fp16's +-65504 was stored as an fp16-safe value ({rewritten[0]}{more}): right "
                "for a mask fill, not for a scale or offset the values need"
            )
        return Verdict(
            FAIL,
            f"weight storage loss, not a conversion problem: {sto.measured_on}: {sto.comparison.headline()}"
            f"{where}{also}; keep more precision for the weights (--precision fp32, or compress less)",
        )
    overflow = div.overflow_ops if div is not None else []
    if (com is not None and com.passed is False) or overflow:
        where = ""
        if overflow:
            o = overflow[0]
            more = f" (+{len(overflow) - 1} more)" if len(overflow) > 1 else ""
            where = f"; fp16 overflow at {_where(r, o)}{more}"
            if getattr(o, "model_input", None):  # no op can be kept in fp32 to hold the input's own values
                where += (
                    f": its values exceed fp16's ±65504; scale {o.model_input} into range before the model"
                )
        elif div is not None and div.first_divergent is not None:
            first = div.first_divergent
            where = f"; first diverges at {_where(r, first)}"
        elif com is not None and com.comparison is not None:
            where = _discrete_loss(r, com.comparison)
        return Verdict(FAIL, f"fp16 compute precision loss{where}{also}{_fix(r)}")
    if not r.fp16.passed:
        return Verdict(
            FAIL,
            f"fp16 outside tolerance end to end: {r.fp16.headline()} (weights and compute together){also}",
        )
    if r.trained is not None and r.trained.looks_untrained:
        return Verdict(WARN, f"model looks untrained; errors may be exaggerated{also}")
    if div is not None and div.first_divergent is not None:
        first = div.first_divergent
        return Verdict(
            WARN,
            f"an intermediate value diverges in fp16 from {_where(r, first)} on, outputs within "
            f"tolerance{also}",
        )
    flushed = sum(o.underflow for o in div.underflow_ops) if div is not None else 0
    # values below fp16's normal range flushed to zero that leave the outputs within tolerance are harmless
    note = f"; {flushed} tiny value(s) flushed to zero in fp16, harmless here" if flushed else ""
    return Verdict(PASS, f"outputs within tolerance{also}{note}")


def _op_at(op: Any) -> str:
    """``aten::x at file.py:N (module)``: an unsupported op with where the model calls it, when known."""
    if not isinstance(op, dict):
        return str(op)
    where = f" at {op['location']}" if op.get("location") else ""
    module = f" ({op['module_path']})" if op.get("module_path") else ""
    return f"{op['op']}{where}{module}"


def _random(random: dict[str, Any], also: str) -> Verdict:
    """A model drawing random numbers: not comparable, which is neither a conversion nor an fp16 problem."""
    where = random.get("where") or []
    drawn = f" at {where[0]}" + (f" (+{len(where) - 1} more)" if len(where) > 1 else "") if where else ""
    change = random.get("reference_change") or 0.0
    repeat = (
        f"; PyTorch itself gives outputs {change:.3g} apart (relative) on the same input"
        if change > 1e-6
        else ""
    )
    mutated = random.get("mutated_buffers") or []
    if mutated and not where:
        named = ", ".join(mutated[:3]) + (f" (+{len(mutated) - 3} more)" if len(mutated) > 3 else "")
        return Verdict(
            FAIL,
            f"not verifiable, not a conversion problem: the model's forward updates its own buffer(s) {named}"
            f"{repeat}, so each call answers differently and the converted model (which keeps them constant) "
            "cannot match; keep forward from changing the model's state (update the buffers outside forward, "
            f"or pass the state in as an input and return the new state) and check again{also}",
        )
    return Verdict(
        FAIL,
        f"not verifiable, not a conversion problem: the model draws random numbers{drawn}{repeat}, so no run "
        "can be compared with another; pass the random values in as an input (or drop the sampling for "
        f"inference) and check again{also}",
    )


def _fix(r: Any) -> str:
    """``; fix: keep 3 ops in fp32 (...): --precision mixed --fp32-ops ... (verified: SNR ...)``."""
    fix = r.repair
    if fix is None:
        return ""
    still_fails = fix.verified is not None and not fix.verified.passed
    if not fix.ops:
        if fix.passed:
            # NOTE: the repair searches for cosine >= its bound; a failure the cosine does not see (argmaxes
            # flipped per pixel at cosine 0.9999) is not something it can fix, and saying "no op" alone reads
            # as "nothing to do"
            return (
                f"; the fp16 repair (guided by cosine >= {fix.threshold:g}, which fp16 already meets) has no op "
                "set to offer for this failure: keep the model in fp32 (--precision fp32), or the layers "
                "feeding the failing output (--precision mixed --fp32-ops ...)"
            )
        return "; the fp16 repair found no op to keep in fp32"
    if not fix.passed:
        return (
            f"; even with {len(fix.ops)} ops kept in fp32 the repair bound is not met: use --precision fp32"
        )
    labels = list(dict.fromkeys(o.origin or o.name for o in fix.ops))
    shown = ", ".join(labels[:3]) + (f" +{len(labels) - 3} more" if len(labels) > 3 else "")
    if still_fails:
        return (
            f"; keeping {len(fix.ops)} op(s) in fp32 ({shown}: {fix.cli}) meets the repair's cosine bound but "
            f"not the check (verified: {fix.verified.headline()}): use --precision fp32"
        )
    verified = f" (verified: {fix.verified.headline()})" if fix.verified is not None else ""
    return f"; fix: keep {len(fix.ops)} op(s) in fp32 ({shown}): {fix.cli}{verified}"


def _data(r: Any) -> Verdict:
    return Verdict(
        FAIL,
        f"bad data, not a model problem: {'; '.join(r.data_findings)}; those samples were left out of the "
        "comparisons: fix or drop them",
    )


def _memory(r: Any) -> Verdict:
    known = [f for f in r.fits if f.fits is not None]
    fitting = [f for f in known if f.fits]
    if not known:
        return Verdict(SKIPPED, "no device in the fit table has a known app memory budget")
    if not fitting:
        return Verdict(FAIL, "working set exceeds every device's app memory budget")
    # the devices the user asked about (--target) must each fit; the rest of a catalog-wide table may not
    options = getattr(r, "options", None)  # a result built without options (tests, the LM path) asked none
    asked = {str(d).strip().lower() for d in (getattr(options, "devices", None) or [])}
    missed = [f for f in known if not f.fits and (f.device.lower() in asked or f.name.lower() in asked)]
    if missed:
        names = ", ".join(f.name for f in missed)
        return Verdict(
            FAIL,
            f"working set exceeds the app memory budget of --target {names}; shrink it (devicefit compress, a "
            "smaller input) or drop that target",
        )
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
    if r.data_findings:
        v["data"] = _data(r)
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
