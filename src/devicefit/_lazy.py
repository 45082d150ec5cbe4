"""Heavy imports, done lazily and quietly.

coremltools logs a warning per missing macOS proxy and for untested torch / scikit-learn versions at
import; on Linux those are expected, so they are silenced here (real conversion warnings still show). The filter
is installed when devicefit itself is imported (:func:`quiet_coremltools`, cheap: no coremltools import), so
every path is quiet, whichever module imports coremltools first (the convert path's rescue translations
imported a submodule before :func:`coremltools` was ever called, and ``check`` printed ten such lines).
"""

from __future__ import annotations

import logging
from types import ModuleType

_QUIET_PATTERNS = (
    "Failed to load _",
    "has not been tested with coremltools",
    "is not supported. Minimum required version",
)


class _DropExpectedWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(p in msg for p in _QUIET_PATTERNS)


_ct: ModuleType | None = None
_FILTER = _DropExpectedWarnings()


def quiet_coremltools() -> None:
    """Drop coremltools' expected import warnings from its logger (idempotent; imports nothing heavy)."""
    logging.getLogger("coremltools").addFilter(_FILTER)  # (adding the same filter twice keeps one)


def coremltools() -> ModuleType:
    """Import coremltools once, without its expected Linux warnings, and with progress bars off."""
    global _ct
    if _ct is None:
        quiet_coremltools()
        import coremltools as ct

        _ct = ct
    return _ct


def is_macos() -> bool:
    import platform

    return platform.system() == "Darwin"
