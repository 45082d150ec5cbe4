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
    timings["load"] = time.perf_counter() - t0
    result.dataset = sources_stage.load_dataset(source, options)
    t = time.perf_counter()
    converted = convert_stage.convert(source, options)
    result.convert = converted.summary
    timings["convert"] = time.perf_counter() - t
    if converted.mlmodel is None:
        result.verdicts = verdicts_stage.decide(result)
        return result
    result.mlmodel = converted.mlmodel
    t = time.perf_counter()
    program = interp.load(converted.mlmodel)
    result.program = program
    runs = validate_stage.run_samples(program, source, result.dataset, options, progress)
    timings["validate"] = time.perf_counter() - t
    t = time.perf_counter()
    numerics = numerics_stage.compare_runs(program, runs, result.dataset.labels)
    result.fp32, result.fp16, result.trained = numerics.fp32, numerics.fp16, numerics.trained
    result.divergence = numerics.divergence
    result.warnings.extend(numerics.warnings)
    with_flexible = source if sources_stage.has_reference(source) else None
    analysis = analyze_stage.analyze(
        program,
        options,
        runs.divergence_shapes,
        _package_path(options, converted.mlmodel, source),
        with_flexible,
    )
    result.size, result.memory, result.fits = analysis.size, analysis.memory, analysis.fits
    result.working_set_bytes, result.ane_lint = analysis.working_set_bytes, analysis.ane_lint
    result.latency = analysis.latency
    result.warnings.extend(analysis.warnings)
    if analysis.flexible is not None:
        result.extras["flexible"] = analysis.flexible
    timings["analyze"] = time.perf_counter() - t
    result.verdicts = verdicts_stage.decide(result)
    timings["total"] = time.perf_counter() - t0
    return result
