"""Show a check: the versioned JSON report, the terminal summary, the self-contained HTML page, CI gates.

Submodules: :mod:`.schema` (CheckResult -> report dict, ``SCHEMA_VERSION``), :mod:`.terminal` (rich
summary), :mod:`.html` and :mod:`.svg` (the HTML page and its inline plots), :mod:`.gates` (``--fail-on``).
Every renderer reads the report dict, so JSON, terminal and HTML always agree.
"""

from __future__ import annotations
