"""``convert``: a SourceModel -> Core ML ML Program, through TorchScript or torch.export, with rescue ops."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devicefit.convert.options import ConvertOptions, ct_convert_kwargs, ct_inputs, ct_outputs
from devicefit.convert.rescue import rescue_translations
from devicefit.convert.scan import (
    FrontendResult,
    ScanReport,
    export_program,
    one_line,
    static_scan,
    take_scan_graph,
    trace_module,
)
from devicefit.errors import DevicefitError, InputError, OutputExistsError

if TYPE_CHECKING:
    from devicefit.sources import SourceModel


class ConversionError(DevicefitError):
    """No frontend converts the model; ``scan`` holds every unsupported op and each frontend's error."""

    def __init__(self, message: str, scan: ScanReport):
        super().__init__(message)
        self.scan = scan


@dataclass
class ConversionResult:
    """A converted model and how it was made.

    Attributes:
        mlmodel: the Core ML model (an ML Program).
        frontend: ``"torchscript"``, ``"torch.export"`` or ``"coreml"`` (the source already was Core ML).
        options: the options used.
        scan: the op scan plus the conversion attempts made.
        seconds: wall time of the conversion, attempts included.
    """

    mlmodel: Any
    frontend: str
    options: ConvertOptions
    scan: ScanReport
    seconds: float

    def save(self, path: str | os.PathLike[str], force: bool = False) -> Path:
        """Save as ``.mlpackage`` atomically; refuses to overwrite an existing path unless ``force``.

        Raises:
            OutputExistsError: ``path`` exists and ``force`` is False.
            InputError: ``path`` does not end in ``.mlpackage``.
        """
        from devicefit.io import atomic_path

        target = Path(path)
        if target.suffix != ".mlpackage":
            raise InputError(f"save path {str(path)!r} must end in .mlpackage (an ML Program is a package)")
        if target.exists() and not force:
            raise OutputExistsError(f"{target} exists; pass --force to overwrite it")
        with atomic_path(target) as tmp:
            self.mlmodel.save(str(tmp))
        return target


def convert(source: SourceModel, options: ConvertOptions | None = None) -> ConversionResult:
    """Convert a torch source to a Core ML ML Program.

    Tries the frontend(s) ``options.frontend`` allows (``auto``: TorchScript, then torch.export) with
    devicefit's rescue translations installed.

    Args:
        source: from :func:`devicefit.sources.load_source`.
        options: conversion options (defaults: iOS17, fp16).

    Returns:
        The ConversionResult.

    Raises:
        InputError: invalid options.
        ConversionError: no frontend converts; the message lists every unsupported op at once.
    """
    options = options or ConvertOptions()
    options.validate(source)
    start = time.perf_counter()
    if source.kind == "coreml":
        return ConversionResult(source.mlmodel, "coreml", options, ScanReport(), 0.0)
    report = ScanReport()
    with rescue_translations():
        for name in frontend_order(source, options.frontend):
            # scan each frontend's graph only when we get to it: a TorchScript success needs no export graph
            static_scan(source, (name,), into=report)
            mlmodel, result = _attempt(source, name, options)
            report.frontends.append(result)
            if mlmodel is not None:
                return ConversionResult(mlmodel, name, options, report, time.perf_counter() - start)
    raise ConversionError(f"cannot convert {source.origin}: {report.summary()}", report)


def frontend_order(source: SourceModel, frontend: str) -> list[str]:
    if frontend != "auto":
        return [frontend]
    if source.kind == "exported":
        return ["torch.export", "torchscript"]
    return ["torchscript", "torch.export"]


def try_frontend(source: SourceModel, name: str, options: ConvertOptions | None) -> FrontendResult:
    """Convert through one frontend and report whether it worked (the model is discarded)."""
    with rescue_translations():
        return _attempt(source, name, options or ConvertOptions(precision="fp32"))[1]


def _attempt(source: SourceModel, name: str, options: ConvertOptions) -> tuple[Any, FrontendResult]:
    start = time.perf_counter()
    try:
        mlmodel = _convert_with(source, name, options)
    except DevicefitError:
        raise
    except Exception as exc:
        return None, FrontendResult(name, False, one_line(exc), time.perf_counter() - start)
    return mlmodel, FrontendResult(name, True, None, time.perf_counter() - start)


def _convert_with(source: SourceModel, frontend: str, options: ConvertOptions) -> Any:

    from devicefit._lazy import coremltools

    ct = coremltools()
    if frontend == "torchscript":
        model = take_scan_graph(source, "torchscript") or trace_module(source)
    else:
        scanned = None if options.flexible else take_scan_graph(source, "torch.export")
        model = scanned if scanned is not None else _export_for(source, options)
    with _quiet_coremltools():
        mlmodel = ct.convert(
            model,
            inputs=ct_inputs(ct, source, options),
            outputs=ct_outputs(ct, source, options),
            **ct_convert_kwargs(ct, options),
        )
    # op scopes exist only on the freshly converted model: keep them in the package metadata
    from devicefit.convert import provenance

    # devicefit traces / exports the user's module wrapped as ``inner`` unless the user gave an ExportedProgram
    root = "" if frontend == "torch.export" and source.exported is not None else "inner"
    provenance.attach(mlmodel, provenance.collect(mlmodel, model, root=root))
    return mlmodel


def _export_for(source: SourceModel, options: ConvertOptions) -> Any:
    """torch.export the source; flexible inputs become dynamic dims (static ones are baked in by export)."""
    import torch

    if not options.flexible or source.exported is not None:
        return export_program(source)
    dynamic: list[dict[int, Any] | None] = []
    for spec in source.input_specs:
        flex = options.flexible.get(spec.name)
        dims: dict[int, Any] = {}
        if flex is not None and flex.ranges:
            for d, (lo, hi) in flex.ranges.items():
                axis = d % len(spec.shape)
                dims[axis] = torch.export.Dim(f"{spec.name}_{axis}", min=lo, max=None if hi == -1 else hi)
        elif flex is not None and flex.enumerated:
            for axis in range(len(spec.shape)):
                sizes = {s[axis] for s in flex.enumerated} | {spec.shape[axis]}
                if len(sizes) > 1:
                    dims[axis] = torch.export.Dim(f"{spec.name}_{axis}", min=min(sizes), max=max(sizes))
        dynamic.append(dims or None)
    with torch.no_grad():
        program = torch.export.export(
            source.traceable(), source.example_tensors(), dynamic_shapes=(tuple(dynamic),), strict=False
        )
    return program.run_decompositions({})


class _quiet_coremltools:
    """Silence coremltools' per-op progress logging during a conversion attempt (errors still raise)."""

    def __enter__(self) -> None:
        self._logger = logging.getLogger("coremltools")
        self._level = self._logger.level
        self._logger.setLevel(logging.CRITICAL)

    def __exit__(self, *exc: object) -> None:
        self._logger.setLevel(self._level)
