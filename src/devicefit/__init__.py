"""devicefit: ship PyTorch models to Apple devices with confidence, from any Linux or macOS machine.

Public API (imports are lazy so ``import devicefit`` is instant):

* :func:`devicefit.interp.load` — run Core ML ML Programs without a Mac.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
