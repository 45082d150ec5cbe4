"""Former home of the untrusted-file helpers, now :mod:`devicefit.sources.untrusted_files` (the sources stage
reads packages too, and may not import the interpreter); kept importable from here."""

from __future__ import annotations

from devicefit.sources.untrusted_files import inside, read_bounded, require_regular, shown, stat_path

__all__ = ["inside", "read_bounded", "require_regular", "shown", "stat_path"]
