"""devicefit: ship PyTorch models to Apple devices with confidence, from any Linux or macOS machine.

Public API (attributes are imported lazily, so ``import devicefit`` and ``devicefit --help`` stay instant):

* :func:`devicefit.load` — a model handle (lazy load, sync / batch / async prediction with flow control).
* :mod:`devicefit.interp` — run Core ML ML Programs without a Mac (``interp.load(path).run(...)``).
* :mod:`devicefit.engines`, :mod:`devicefit.profile`, :mod:`devicefit.analyze`, :mod:`devicefit.compress`.
"""

from __future__ import annotations

import importlib
from typing import Any

from devicefit._lazy import quiet_coremltools

__version__ = "0.1.0"

# coremltools' import-time warnings about its macOS-only parts are expected off a Mac: filtered before any
# module of devicefit (or the user's) imports it (devicefit/_lazy.py)
quiet_coremltools()

_LAZY = {"load": ("devicefit.runtime", "load")}
_SUBMODULES = {
    "interp",
    "engines",
    "runtime",
    "profile",
    "analyze",
    "compare",
    "compress",
    "convert",
    "sources",
    "report",
}

__all__ = ["__version__", "load", *sorted(_SUBMODULES)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name in _SUBMODULES:
        return importlib.import_module(f"devicefit.{name}")
    raise AttributeError(f"module 'devicefit' has no attribute {name!r}")
