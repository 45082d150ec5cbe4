"""``convert``: a SourceModel -> Core ML ML Program, through TorchScript or torch.export, with rescue ops."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devicefit.convert.fp16_constants import ConstantFix
from devicefit.convert.frontends import attempt, frontend_order, try_frontend
from devicefit.convert.options import ConvertOptions
from devicefit.convert.rescue import recorded_uses, rescue_translations
from devicefit.convert.scan import ScanReport, keep_used_rescues, settle, static_scan
from devicefit.errors import DevicefitError

if TYPE_CHECKING:
    from devicefit.sources import SourceModel

__all__ = ["ConversionError", "ConversionResult", "convert", "try_frontend"]


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
        fp16_constant_fixes: constants the fp16-safe pass rewrote (empty under fp32 or when opted out).
    """

    mlmodel: Any
    frontend: str
    options: ConvertOptions
    scan: ScanReport
    seconds: float
    fp16_constant_fixes: list[ConstantFix] = field(default_factory=list)

    def save(self, path: str | os.PathLike[str], force: bool = False) -> Path:
        """Save as ``.mlpackage`` atomically; refuses to overwrite an existing path unless ``force``.

        Raises:
            OutputExistsError: ``path`` exists and ``force`` is False.
            InputError: ``path`` does not end in ``.mlpackage``.
        """
        from devicefit.io import save_package

        return save_package(self.mlmodel, path, force=force)


def convert(source: SourceModel, options: ConvertOptions | None = None) -> ConversionResult:
    """Convert a torch source to a Core ML ML Program.

    Tries the frontend(s) ``options.frontend`` allows (``auto``: TorchScript, then torch.export) with
    devicefit's rescue translations installed for the duration of the call.

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
    graphs: dict[str, Any] = {}
    tried: set[str] = set()
    with rescue_translations():
        for name in frontend_order(source, options.frontend):
            # scan each frontend's graph only when we get to it: a TorchScript success needs no export graph
            static_scan(source, (name,), into=report, graphs=graphs)
            fixes: list[ConstantFix] = []
            with recorded_uses() as used:
                mlmodel, result = attempt(source, name, options, graphs.pop(name, None), fixes)
            report.frontends.append(result)
            if mlmodel is not None:
                # the scan lists every op kind with a devicefit translation; keep those that translated a node
                # themselves (an override such as pad hands all but one mode to coremltools)
                keep_used_rescues(report, used)
                settle(report)
                return ConversionResult(mlmodel, name, options, report, time.perf_counter() - start, fixes)
            tried |= used
    keep_used_rescues(report, tried)
    settle(report)
    from devicefit.convert.quantized import quantized_hint

    hint = quantized_hint(source.module)
    lead = f"{hint} | " if hint else ""
    raise ConversionError(f"cannot convert {source.origin}: {lead}{report.summary()}", report)
