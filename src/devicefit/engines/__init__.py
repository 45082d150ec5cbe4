"""Engines: one runner protocol over PyTorch, devicefit's interpreter, ONNX Runtime and native Core ML.

::

    from devicefit.engines import create
    with create("interp", "model.mlpackage", precision="fp16") as engine:
        outputs = engine.predict({"x": x})
        print(engine.timings.load_s)
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from devicefit.engines.base import (
    COMPUTE_UNITS,
    Availability,
    Engine,
    EngineStateError,
    EngineUnavailableError,
    InputSpec,
    validate_feeds,
)
from devicefit.errors import InputError

# name -> "module:Class", imported on first use so `import devicefit.engines` stays cheap
_ENGINES = {
    "torch": "devicefit.engines.torch_engine:TorchEngine",
    "interp": "devicefit.engines.interp_engine:InterpEngine",
    "onnxruntime": "devicefit.engines.onnx_engine:OnnxRuntimeEngine",
    "coreml": "devicefit.engines.coreml_engine:CoreMLEngine",
}
ENGINE_NAMES = tuple(_ENGINES)


def engine_class(name: str) -> type[Engine]:
    """The Engine subclass registered as ``name``."""
    if name not in _ENGINES:
        raise InputError(f"unknown engine {name!r}; choose one of {', '.join(ENGINE_NAMES)} or 'auto'")
    module, cls = _ENGINES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def availability(name: str | None = None) -> list[Availability]:
    """What each engine (or the named one) can run on this host."""
    return [engine_class(n).availability() for n in ([name] if name else ENGINE_NAMES)]


def resolve_auto(model: Any) -> str:
    """engine="auto": coreml on macOS, interp for Core ML models elsewhere, onnxruntime for .onnx,
    torch for nn.Modules and TorchScript files."""
    from devicefit._lazy import is_macos

    if isinstance(model, (str, os.PathLike)):
        suffix = Path(model).suffix.lower()
        if suffix in (".mlpackage", ".mlmodel"):
            return "coreml" if is_macos() and engine_class("coreml").availability().available else "interp"
        if suffix == ".onnx":
            return "onnxruntime"
        if suffix in (".pt", ".pth", ".ts", ".torchscript", ".jit"):
            return "torch"
        raise InputError(
            f"cannot pick an engine for {model}: expected .mlpackage, .mlmodel, .onnx or a TorchScript .pt; "
            "pass engine=... explicitly"
        )
    mod = type(model).__module__
    if mod.startswith("torch"):
        return "torch"
    if mod.startswith("coremltools"):
        return "coreml" if is_macos() and engine_class("coreml").availability().available else "interp"
    import torch

    if isinstance(model, torch.nn.Module):
        return "torch"
    raise InputError(f"cannot pick an engine for a {type(model).__name__}; pass a model path or an nn.Module")


def create(name: str, model: Any, **kwargs: Any) -> Engine:
    """Create (not load) engine ``name`` (or ``"auto"``) for ``model``; kwargs go to the engine."""
    if name == "auto":
        name = resolve_auto(model)
    return engine_class(name)(model, **kwargs)


__all__ = [
    "COMPUTE_UNITS",
    "ENGINE_NAMES",
    "Availability",
    "Engine",
    "EngineStateError",
    "EngineUnavailableError",
    "InputSpec",
    "availability",
    "create",
    "engine_class",
    "resolve_auto",
    "validate_feeds",
]
