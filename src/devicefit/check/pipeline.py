"""The check pipeline: each stage of :mod:`devicefit.check` in order, timed, into one CheckResult."""

from __future__ import annotations

import time
from typing import Any

from devicefit.check import analyze as analyze_stage
from devicefit.check import convert as convert_stage
from devicefit.check import numerics as numerics_stage
from devicefit.check import sources as sources_stage
from devicefit.check import validate as validate_stage
from devicefit.check import verdicts as verdicts_stage
from devicefit.check.declared import declared_type_findings
from devicefit.check.types import CheckOptions, CheckResult, ConvertSummary, Progress


def _package_path(options: CheckOptions, mlmodel: Any, source: Any) -> Any:
    path = options.package_path or getattr(mlmodel, "package_path", None)
    if path is None and getattr(source, "mlmodel", None) is not None:
        path = getattr(source, "origin", None)
    return path


def run_check(options: CheckOptions, progress: Progress | None = None) -> CheckResult:
    """Run the whole check pipeline.

    Args:
        options: what to check.
        progress: called as ``progress(stage, done, total)`` while validating.

    Raises:
        DevicefitError: bad input (missing model or data, wrong shapes, corrupted package...).
    """
    from devicefit import interp

    analyze_stage.focus_devices(options)  # unknown device ids fail before any work
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    source = sources_stage.load_model(options)
    result = CheckResult(
        options,
        str(getattr(source, "origin", options.model)),
        str(getattr(source, "kind", "")),
        ConvertSummary(ok=False),
        timings=timings,
    )
    result.warnings.extend(getattr(source, "notes", []))  # e.g. example flags fixed as constants
    timings["load"] = time.perf_counter() - t0
    result.dataset = sources_stage.load_dataset(source, options)
    result.warnings.extend(getattr(result.dataset, "notes", []))
    screen = sources_stage.screen_data(result.dataset)
    result.data_findings, result.bad_samples = screen.findings, screen.bad_samples
    t = time.perf_counter()
    converted = convert_stage.convert(source, options)
    result.convert = converted.summary
    timings["convert"] = time.perf_counter() - t
    if converted.mlmodel is None:
        from devicefit.convert.quantized import quantized_hint

        hint = quantized_hint(getattr(source, "module", None))
        if hint:
            result.extras["quantized_modules"] = hint
        result.verdicts = verdicts_stage.decide(result)
        return result
    result.mlmodel = converted.mlmodel
    for warned in result.convert.trace_warnings[:3]:
        result.warnings.append(
            f"TorchScript tracing froze a Python-side value at {warned}: the converted model repeats what the "
            "example input did there (the numerics below test other inputs)"
        )
    t = time.perf_counter()
    program = interp.load(converted.mlmodel)
    result.program = program
    renamed = validate_stage.renamed_inputs([s.name for s in source.input_specs], program)
    if renamed:
        result.extras["renamed_inputs"] = renamed
    clean = screen.clean
    observed: dict[str, tuple[int, ...]] = {}
    if clean.feeds:
        try:
            observed = _numerics(result, program, source, converted, clean, options, progress)
        except interp.OpFailedError as exc:
            # NOTE: PyTorch ran these very inputs: a program that cannot is what the conversion made of the
            # model (coremltools' packed sequences give the LSTM state the batch of the first length), not a
            # shape the user fed; without a reference the inputs may be at fault, and the error stands
            if not (sources_stage.has_reference(source) and exc.where):
                raise
            result.extras["program_failure"] = {"where": exc.where, "error": exc.why}
    else:
        result.warnings.append("every validation sample holds NaN/inf: numerics were not compared")
    t = time.perf_counter()
    with_flexible = source if sources_stage.has_reference(source) else None
    analysis = analyze_stage.analyze(
        program,
        options,
        observed,
        _package_path(options, converted.mlmodel, source),
        with_flexible,
        converted.mlmodel,
    )
    result.size, result.memory, result.fits = analysis.size, analysis.memory, analysis.fits
    result.working_set_bytes, result.ane_lint = analysis.working_set_bytes, analysis.ane_lint
    result.latency = analysis.latency
    result.warnings.extend(analysis.warnings)
    if analysis.flexible is not None:
        result.extras["flexible"] = analysis.flexible
    if analysis.unsafe_constants:
        result.extras["unsafe_constants"] = analysis.unsafe_constants
    fixes = getattr(converted.conversion, "fp16_constant_fixes", None)
    if fixes:
        result.extras["fp16_constant_fixes"] = [f.describe() for f in fixes]
    timings["analyze"] = time.perf_counter() - t
    result.verdicts = verdicts_stage.decide(result)
    timings["total"] = time.perf_counter() - t0
    return result


def _numerics(
    result: CheckResult,
    program: Any,
    source: Any,
    converted: convert_stage.Converted,
    clean: Any,
    options: CheckOptions,
    progress: Progress | None,
) -> dict[str, tuple[int, ...]]:
    """Stages 3 and 4 into ``result``; returns the value shapes observed (for the memory analysis)."""
    from devicefit import interp

    timings = result.timings
    t = time.perf_counter()
    runs = validate_stage.run_samples(program, source, clean, options, progress)
    timings["validate"] = time.perf_counter() - t
    mistyped = declared_type_findings(program, runs.divergence_shapes)
    if mistyped:
        result.extras["declared_type_mismatches"] = mistyped

    fp32_model: list[Any] = []  # converted at most once, shared by the fidelity question and the repair

    def fp32_mlmodel() -> Any:
        if not fp32_model:
            t32 = time.perf_counter()
            fp32_model.append(convert_stage.convert_fp32(source, options, converted.summary.frontend))
            timings["fp32_conversion"] = time.perf_counter() - t32
        return fp32_model[0]

    separate: list[list[dict[str, Any]]] = []  # the fp32 conversion's outputs, kept for the localisation

    def fp32_conversion() -> list[dict[str, Any]]:
        if not separate:
            separate.append(validate_stage.run_outputs(interp.load(fp32_mlmodel()), clean, options, "fp32"))
        return separate[0]

    randomness = _randomness(program, source, clean, runs)
    if randomness:
        result.extras["randomness"] = randomness
    weights_fp32 = options.precision == "fp32" and not converted.summary.skipped
    numerics = numerics_stage.compare_runs(
        program, runs, clean.labels, weights_fp32, fp32_conversion, options.class_axes
    )
    result.fp32, result.fp16, result.trained = numerics.fp32, numerics.fp16, numerics.trained
    result.divergence, result.questions = numerics.divergence, numerics.questions
    result.warnings.extend(numerics.warnings)
    if numerics.padding is not None:
        result.extras["padding"] = numerics.padding.to_json()
    if randomness:  # no comparison can judge it: nothing to localise or repair
        return runs.divergence_shapes
    fidelity_runs = runs.fp32 if weights_fp32 else (separate[0] if separate else [])
    worst = _worst(runs.torch, fidelity_runs)
    # NOTE: a weight-storage failure is searched for on the sample where the *package* (its stored weights, run
    # in fp32: runs.fp32) differs most; the fp32 conversion's worst sample may be one the weights get right
    storage_only = _failed(result, numerics_stage.STORAGE) and not _failed(result, numerics_stage.FIDELITY)
    searched = _worst(runs.torch, runs.fp32) if storage_only else worst
    _localize(result, program, source, clean, options, weights_fp32, fp32_mlmodel, searched)
    _export_divergence(result, source, clean, fidelity_runs, worst)
    if options.repair and runs.torch and _compute_failed(result):
        t = time.perf_counter()
        result.repair = _fix(fp32_mlmodel(), runs, clean, options, source, program)
        timings["fp16_repair"] = time.perf_counter() - t
    return runs.divergence_shapes


_RANDOM_OPS = ("random_uniform", "random_normal", "random_bernoulli", "random_categorical")


def _randomness(program: Any, source: Any, clean: Any, runs: Any) -> dict[str, Any]:
    """Where the model draws random numbers: the program's random ops, and whether PyTorch repeats itself.

    NOTE: a model that samples at inference (HF ViTMAE shuffles patches by ``torch.rand`` in eval) gives other
    outputs on every run, in PyTorch and in Core ML alike: no comparison can judge its conversion, and the
    difference must not be reported as a conversion problem.
    """
    import numpy as np

    from devicefit.convert.provenance import load_from_package

    steps = [s for s in _all_steps(program.plan.block) if s.op_type in _RANDOM_OPS]
    changed = 0.0
    mutated: list[str] = []
    if runs.torch and clean.feeds:
        before = _buffers(source)
        # NOTE: under the thread setting the validation ran PyTorch with: float sums split by another thread
        # count differ (HF Depth Anything: 2.6e-6 between 1 and 2 threads), which is not randomness
        with validate_stage.threads_for(program):
            again = source.reference(clean.feeds[0])
        after = _buffers(source)
        # NOTE: a forward that updates its own buffers (an online normaliser, BatchNorm statistics) also
        # changes run to run; named as such, it is not "draws random numbers"
        mutated = [
            n for n, b in before.items() if n in after and not np.array_equal(b, after[n], equal_nan=True)
        ]
        for name, first in runs.torch[0].items():
            a, b = np.asarray(first, np.float64), np.asarray(again.get(name), np.float64)
            if a.shape != b.shape:
                changed = 1.0
                continue
            # NaN / inf PyTorch gives on both runs (a mask, a log of 0) is the same value, not a change
            same = (a == b) | (np.isnan(a) & np.isnan(b))
            finite = np.abs(a[np.isfinite(a)])
            scale = float(finite.max()) if finite.size else 0.0
            with np.errstate(invalid="ignore"):
                gap = np.where(same, 0.0, np.abs(a - b))  # NaN on one run only: changed without bound
                diff = float(np.nan_to_num(gap, nan=np.inf, posinf=np.inf).max()) if a.size else 0.0
            changed = max(changed, diff / scale if scale > 0 else diff)
    if not steps and changed <= 1e-6:
        return {}
    try:
        provenance = load_from_package(program)
    except Exception:  # NOTE: naming is a convenience: the finding stands without it
        provenance = None
    where = []
    for step in steps:
        origin = provenance.find(*step.outputs, step.name) if provenance is not None else None
        where.append(origin.label() if origin is not None else f"{step.op_type} ({step.outputs[0]})")
    found: dict[str, Any] = {"where": list(dict.fromkeys(where)), "reference_change": changed}
    if mutated:
        found["mutated_buffers"] = mutated
    return found


def _buffers(source: Any) -> dict[str, Any]:
    """The module's float / integer buffers as numpy copies (empty without an ``nn.Module``)."""
    module = getattr(source, "module", None)
    if module is None or not hasattr(module, "named_buffers"):
        return {}
    return {
        name: b.detach().cpu().float().numpy().copy() for name, b in module.named_buffers() if b is not None
    }


def _all_steps(block: Any) -> list[Any]:
    steps = []
    for step in block.steps:
        steps.append(step)
        for inner in getattr(step.ctx, "blocks", None) or []:
            steps.extend(_all_steps(inner))
    return steps


def _failed(result: CheckResult, question: str) -> bool:
    answer = result.questions.get(question)
    return answer is not None and answer.passed is False


def _worst(reference: list[dict[str, Any]], got: list[dict[str, Any]]) -> int:
    """The sample whose outputs differ most from the reference (relative L2 over every output); 0 if unknown."""
    import numpy as np

    errors = []
    for ref, out in zip(reference, got, strict=False):
        num = den = 0.0
        for r, o in zip(ref.values(), out.values(), strict=False):
            a, b = np.asarray(o, np.float64).ravel(), np.asarray(r, np.float64).ravel()
            if a.shape != b.shape:
                continue
            num += float(np.nansum((a - b) ** 2))
            den += float(np.nansum(b**2))
        errors.append(num / den if den > 0 else num)
    return int(np.argmax(errors)) if errors else 0


def _localize(
    result: CheckResult, program: Any, source: Any, clean: Any, options: CheckOptions, weights_fp32: bool,
    fp32_mlmodel: Any, sample: int = 0,
) -> None:  # fmt: skip
    """A failed conversion-fidelity question: the first source line whose value differs from PyTorch; a failed
    weight-storage question (fidelity passing): the same search in the shipped package run in fp32, whose only
    difference from PyTorch is then its stored weights and constants."""
    from devicefit.check.numerics import FIDELITY, STORAGE

    fidelity, storage = result.questions.get(FIDELITY), result.questions.get(STORAGE)
    if not clean.feeds:
        return
    if fidelity is not None and fidelity.passed is False:
        key, shipped = "conversion_divergence", weights_fp32
    elif storage is not None and storage.passed is False:
        key, shipped = "storage_divergence", True
    else:
        return
    from devicefit import interp
    from devicefit.check.localize import first_divergent_line
    from devicefit.convert.provenance import load_from_package

    try:
        package = program if shipped else interp.load(fp32_mlmodel())
        provenance = load_from_package(package)
    except Exception:  # NOTE: the finding is a convenience; the verdict stands without it
        return
    feeds = clean.feeds[min(sample, len(clean.feeds) - 1)]  # the sample that differs most shows it best
    model_feeds = validate_stage.program_feeds(feeds, options.image_inputs, package)
    found = first_divergent_line(source, package, provenance, feeds, model_feeds)
    if found is not None:
        result.extras[key] = {
            "where": found.label,
            "value": found.mil_name,
            "relative_error": found.rel_error,
        }


def _export_divergence(
    result: CheckResult, source: Any, clean: Any, fidelity_runs: list[dict[str, Any]], sample: int
) -> None:
    """A failed conversion-fidelity question whose cause is upstream of any converter: PyTorch's own exported
    graph differs from eager PyTorch and the converted program follows that graph (see check/eager.py)."""
    from devicefit.check.eager import export_divergence
    from devicefit.check.numerics import FIDELITY

    fidelity = result.questions.get(FIDELITY)
    if fidelity is None or fidelity.passed is not False or not clean.feeds or sample >= len(fidelity_runs):
        return
    found = export_divergence(source, clean.feeds[sample], fidelity_runs[sample])
    if found is not None and found.explains:
        result.extras["export_divergence"] = {
            "eager_error": found.eager_error,
            "converted_error": found.converted_error,
        }


def _compute_failed(result: CheckResult) -> bool:
    """fp16 compute is what fails (not the conversion nor the weights): the case a repair fixes."""
    from devicefit.check.numerics import COMPUTE, FIDELITY, STORAGE

    qs = result.questions
    if any(qs[k].passed is False for k in (FIDELITY, STORAGE) if k in qs):
        return False
    overflow = result.divergence is not None and bool(result.divergence.overflow_ops)
    compute = qs.get(COMPUTE)
    return overflow or (compute is not None and compute.passed is False)


def _fix(fp32_mlmodel: Any, runs: Any, clean: Any, options: CheckOptions, source: Any, program: Any) -> Any:
    from devicefit.check.repair import fp16_fix
    from devicefit.compare.validate import stack_samples

    feeds = [validate_stage.program_feeds(f, options.image_inputs, program) for f in clean.feeds]
    reference = stack_samples(runs.torch, list(runs.torch[0]))
    div = runs.divergence
    # only when the fp32 run is finite: an inf there (a -inf mask fill) is not an fp16 overflow to repair
    overflow = (
        [o.op for o in div.overflow_ops] if div is not None and div.first_nonfinite_fp32 is None else []
    )
    return fp16_fix(fp32_mlmodel, feeds, reference, clean.labels, source, overflow)
