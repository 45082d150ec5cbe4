"""The two torch frontends: build each one's graph (trace / export) and run ``ct.convert`` on it.

``convert`` and ``scan`` both go through :func:`attempt`; a graph built while scanning is handed to the
conversion explicitly (``graph=``), never stored on the source, so a module changed in between is traced
afresh.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devicefit.convert.fp16_constants import ConstantFix, fp16_safe_pass, pipeline_with_pass
from devicefit.convert.options import ConvertOptions, ct_convert_kwargs, ct_inputs, ct_outputs
from devicefit.errors import DevicefitError, first_line
from devicefit.sources.module import raised_at

if TYPE_CHECKING:
    from devicefit.sources import SourceModel

FRONTENDS = ("torchscript", "torch.export")


@dataclass
class FrontendResult:
    """Whether ``ct.convert`` succeeded through one frontend (``"torchscript"`` / ``"torch.export"``).

    Attributes:
        name: the frontend.
        ok: it converted.
        error: its error, one line (None when ok).
        seconds: wall time of the attempt.
        failed_op: the torch op kind (sanitized, e.g. ``"linalg_inv"``) the frontend stopped at, when known.
        failed_node: the name of the node it stopped at (to place it when the op kind appears more than once).
    """

    name: str
    ok: bool
    error: str | None
    seconds: float
    failed_op: str | None = None
    failed_node: str | None = None


def frontend_order(source: SourceModel, frontend: str) -> list[str]:
    """The frontends to try, in order (``auto``: TorchScript first, unless the source is an ExportedProgram)."""
    if frontend != "auto":
        return [frontend]
    if source.kind == "exported":
        return ["torch.export", "torchscript"]
    return ["torchscript", "torch.export"]


@contextlib.contextmanager
def _library_logs_quiet() -> Iterator[None]:
    """transformers' notices off while tracing: its logger's warnings (when it is loaded) and its deprecation
    warnings (restored after).

    Tracing reads the model's properties: transformers then logs "`loss_type=None` was set in the config but it
    is unrecognized" for an encoder that has no loss, which says nothing about the model's conversion.
    """
    import warnings

    transformers = sys.modules.get("transformers")
    tlog = getattr(getattr(transformers, "utils", None), "logging", None)
    with warnings.catch_warnings():
        # the tracer reads every property of every submodule (torch.jit's export scan): transformers' deprecated
        # ones warn ("`is_gradient_checkpointing` is deprecated"), about its API, not the user's model
        for category in (FutureWarning, DeprecationWarning):
            warnings.filterwarnings("ignore", category=category, module=r"transformers(\.|$)")
        if tlog is None:
            yield
            return
        verbosity = tlog.get_verbosity()
        tlog.set_verbosity_error()
        try:
            yield
        finally:
            tlog.set_verbosity(verbosity)


def trace_module(source: SourceModel, warned: list[str] | None = None) -> Any:
    """The source traced with TorchScript (no_grad, no trace check).

    ``warned`` receives torch's TracerWarnings raised in the user's code as ``file.py:line: message`` (a Python
    ``if`` on a tensor, a tensor turned into a Python number: the trace freezes what the example input did
    there); those raised in libraries (transformers' shape checks, harmless at static shapes, on every model)
    are dropped: the user cannot act on them. Other warnings are passed on.
    """
    import warnings

    import torch

    from devicefit.convert._provenance_frontends import _LIBRARY_MARKERS
    from devicefit.convert.complex_constants import split_complex_constants
    from devicefit.convert.slice_assign import pad_assignment_chains
    from devicefit.convert.trace_sizes import sizes_read_as_numbers

    sizes: list[str] = []
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught, _library_logs_quiet():
        warnings.simplefilter("always", torch.jit.TracerWarning)
        with sizes_read_as_numbers(sizes):
            traced = torch.jit.trace(
                _scripted_specialized(source).traceable(),
                source.example_tensors(),
                check_trace=False,
                strict=False,
            )
    split_complex_constants(traced)
    pad_assignment_chains(traced)
    for w in caught:
        if not issubclass(w.category, torch.jit.TracerWarning):
            # NOTE: a library's notice about its own API (transformers' "`is_gradient_checkpointing` is
            # deprecated", raised by the tracer reading the model's properties) is nothing the user can act on
            library = any(marker in w.filename for marker in _LIBRARY_MARKERS)
            if not (library and issubclass(w.category, (DeprecationWarning, FutureWarning))):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            continue
        if any(marker in w.filename for marker in _LIBRARY_MARKERS):
            continue
        # torch's first sentence says what was frozen; the rest is the same advice every time
        what = first_line(str(w.message), limit=160).split(". ")[0].rstrip(".")
        entry = f"{Path(w.filename).name}:{w.lineno}: {what}"
        if warned is not None and entry not in warned:
            warned.append(entry)
    for entry in sizes:
        if warned is not None and entry not in warned:
            warned.append(entry)
    return traced


def _scripted_specialized(source: SourceModel) -> SourceModel:
    """``source`` with a ``torch.jit.script``-ed module specialized to the example input (its shape checks
    folded: :mod:`devicefit.convert.scripted`); the source itself otherwise. The reference keeps the user's
    module."""
    import dataclasses

    from devicefit.convert.scripted import specialized

    positional = not source.call_by_keyword and source.call_template is None
    module = specialized(source.module, source.example_tensors() if positional else ())
    return source if module is source.module else dataclasses.replace(source, module=module)


def export_program(source: SourceModel) -> Any:
    """The source as an ATen-dialect ExportedProgram (decomposed as coremltools expects)."""
    import torch

    if source.exported is not None:
        program = source.exported
    else:
        with torch.no_grad(), _unprinted():
            program = torch.export.export(source.traceable(), source.example_tensors(), strict=False)
    return program.run_decompositions({})


@contextlib.contextmanager
def _unprinted() -> Iterator[None]:
    """Keep what torch.export prints off the terminal: on a failure it prints its partial FX graph (hundreds
    of lines for a transformer) to stderr before raising; the error itself is what devicefit reports.

    NOTE: torch's loggers also write there through handlers that hold the stream they were created with
    (``redirect_stderr`` does not reach them): its fake-tensor logger logs a whole traceback for an op whose
    shapes fail (HF Nystromformer), so their records are dropped while exporting.
    """
    handlers = {
        h
        for name, lg in list(logging.root.manager.loggerDict.items())
        if name == "torch" or name.startswith("torch.")
        if isinstance(lg, logging.Logger)
        for h in lg.handlers
    }
    for h in handlers:
        h.addFilter(_drop_record)
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for h in handlers:
            h.removeFilter(_drop_record)


def _drop_record(record: logging.LogRecord) -> bool:
    return False


def try_frontend(source: SourceModel, name: str, options: ConvertOptions | None = None) -> FrontendResult:
    """Convert through one frontend with devicefit's translations and report whether it worked (model discarded)."""
    from devicefit.convert.rescue import rescue_translations

    with rescue_translations():
        return attempt(source, name, options or ConvertOptions(precision="fp32"))[1]


def attempt(
    source: SourceModel,
    name: str,
    options: ConvertOptions,
    graph: Any = None,
    fixes: list[ConstantFix] | None = None,
) -> tuple[Any, FrontendResult]:
    """Convert through frontend ``name``; ``(mlmodel or None, FrontendResult)``.

    Args:
        source: the model.
        name: ``"torchscript"`` or ``"torch.export"``.
        options: conversion options.
        graph: the traced module / ExportedProgram already built for this source (else built here). Used
            once: coremltools may rewrite a graph while converting it.
        fixes: receives the constants the fp16-safe pass rewrote.
    """
    start = time.perf_counter()
    try:
        mlmodel = _convert_with(source, name, options, graph, [] if fixes is None else fixes)
    except DevicefitError:
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {first_line(exc, limit=240)}"
        where = raised_at(exc)
        if where is not None:  # NOTE: the model's own code raised: PyTorch ran it, the tracer's path differs
            error = f"{type(exc).__name__} at {where} while tracing the model: {first_line(exc, limit=240)}"
        seconds = time.perf_counter() - start
        return None, FrontendResult(name, False, error, seconds, failing_op(exc), failing_node(exc))
    return mlmodel, FrontendResult(name, True, None, time.perf_counter() - start)


_ERROR_OPS = (
    re.compile(r"convert function for op '([^']+)' not implemented"),
    re.compile(r"Unsupported fx node .*?, kind (\S+)"),
    re.compile(r"Torch `([^`]+)` op"),
)


# coremltools' torch frontend functions whose ``node`` local is the op being translated
_TRANSLATION_LOOP = {"convert_single_node", "convert_nodes"}


def failing_op(exc: BaseException) -> str | None:
    """The torch op kind coremltools was translating when ``exc`` was raised (sanitized), if known.

    Read from the translation loop's frame (``node``) in the traceback, else from the message.
    """
    for frame_locals in _traceback_locals(exc):
        node = frame_locals.get("node")
        kind = getattr(node, "kind", None)
        if isinstance(kind, str) and frame_locals["__devicefit_frame__"] in _TRANSLATION_LOOP:
            return kind
    for pattern in _ERROR_OPS:
        match = pattern.search(str(exc))
        if match:
            return match.group(1).strip(".,")
    return None


def failing_node(exc: BaseException) -> str | None:
    """The name of the node coremltools' translation loop was at when ``exc`` was raised, if known."""
    for frame_locals in _traceback_locals(exc):
        name = getattr(frame_locals.get("node"), "name", None)
        if isinstance(name, str) and name and frame_locals["__devicefit_frame__"] in _TRANSLATION_LOOP:
            return name
    return None


def _traceback_locals(exc: BaseException) -> Iterator[dict[str, Any]]:
    tb = exc.__traceback__
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):  # innermost first
        yield {**frame.f_locals, "__devicefit_frame__": frame.f_code.co_name}


def _convert_with(
    source: SourceModel, frontend: str, options: ConvertOptions, graph: Any, fixes: list[ConstantFix]
) -> Any:
    from devicefit._lazy import coremltools

    ct = coremltools()
    if frontend == "torchscript":
        model = graph if graph is not None else trace_module(source)
    else:
        model = graph if graph is not None and not options.flexible else _export_for(source, options)
    kwargs = ct_convert_kwargs(ct, options)
    if frontend == "torch.export":
        from devicefit.convert._provenance_frontends import tag_export_nodes

        tag_export_nodes(model)  # per-node handles: the provenance tells repeated blocks apart
    with _quiet_coremltools(), contextlib.ExitStack() as stack, warnings.catch_warnings():
        # NOTE: numpy warnings raised inside coremltools' passes (optimize_repeat_ops' value-range
        # bookkeeping overflows in a cast) say nothing the user can act on
        warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"coremltools\.")
        if options.fp16_safe_constants and options.precision != "fp32":
            kwargs["pass_pipeline"] = pipeline_with_pass(ct, stack.enter_context(fp16_safe_pass(fixes)))
        mlmodel = ct.convert(
            model, inputs=ct_inputs(ct, source, options), outputs=ct_outputs(ct, source, options), **kwargs
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
    with torch.no_grad(), _unprinted():
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
