"""Heavy imports, done lazily and quietly.

coremltools logs a warning per missing macOS proxy and for untested torch / scikit-learn versions at
import; on Linux those are expected, so they are silenced here (real conversion warnings still show).
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


def coremltools() -> ModuleType:
    """Import coremltools once, without its expected Linux warnings, and with progress bars off."""
    global _ct
    if _ct is None:
        logger = logging.getLogger("coremltools")
        logger.addFilter(_DropExpectedWarnings())
        import coremltools as ct

        _ct = ct
    return _ct


def is_macos() -> bool:
    import platform

    return platform.system() == "Darwin"
