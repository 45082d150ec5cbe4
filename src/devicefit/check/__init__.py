"""``devicefit check``: the whole readiness pipeline over one model, one module per stage.

:mod:`.sources` (model and data) -> :mod:`.convert` (Core ML model) -> :mod:`.validate` (runs: PyTorch,
fp32, fp16, per-op divergence) -> :mod:`.numerics` (comparisons) -> :mod:`.analyze` (size, memory, device
fit, Neural Engine lint, latency bounds, flexible shapes) -> :mod:`.verdicts`. :mod:`.pipeline` chains them
into :func:`run_check`, which returns a :class:`CheckResult` (numbers, no printing); :mod:`devicefit.report`
turns it into the JSON report, the terminal summary and the HTML page.
"""

from __future__ import annotations

from devicefit.check.analyze import resolve_devices
from devicefit.check.pipeline import run_check
from devicefit.check.types import (
    DEFAULT_DEVICES,
    DEFAULT_GENERATED_SAMPLES,
    CheckOptions,
    CheckResult,
    ConvertSummary,
    Progress,
)
from devicefit.check.validate import program_feeds

__all__ = [
    "DEFAULT_DEVICES",
    "DEFAULT_GENERATED_SAMPLES",
    "CheckOptions",
    "CheckResult",
    "ConvertSummary",
    "Progress",
    "program_feeds",
    "resolve_devices",
    "run_check",
]
