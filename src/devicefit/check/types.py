"""The types ``check`` takes and returns: options, the conversion summary and the whole result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Progress = Callable[[str, int, int], None]
DEFAULT_GENERATED_SAMPLES = 16
# Latency bounds without --target: a small set of current iPhones, an iPad and Macs (docs/check.md).
DEFAULT_DEVICES = (
    "iphone-12", "iphone-15", "iphone-15-pro", "iphone-16-pro", "ipad-pro-m4", "mac-m2", "mac-m4",
)  # fmt: skip
FRONTENDS = ("torchscript", "torch.export")


@dataclass
class CheckOptions:
    """What to check and how (the CLI's arguments).

    Attributes:
        model: model spec for :func:`devicefit.sources.load_source`; None runs the bundled demo.
        inputs: ``name:1x3x32x32:float32`` input declarations.
        data: validation data (see :mod:`devicefit.sources.data`); None generates random samples.
        samples: use at most this many samples.
        divergence_samples: samples whose every intermediate value is compared fp16 vs fp32.
        package_path: where the converted package is (or will be) saved; its size is measured there.
        deployment_target: minimum deployment target of the conversion (``iOS15`` ... ``iOS18``).
        devices: catalog ids the fit table and latency bounds focus on; empty: the fit table covers the
            whole catalog and the latency bounds :data:`DEFAULT_DEVICES`.
        extra_devices: ids always included in both (e.g. named by a ``--fail-on`` gate).
        repair: when fp16 fails, search the smallest set of ops to keep in fp32 (the fix, verified).
        class_axes: ``--class-axis``: output name -> the axis holding class scores (None: not class scores).
    """

    model: str | None = None
    inputs: list[str] = field(default_factory=list)
    data: str | None = None
    deployment_target: str = "iOS17"
    devices: list[str] = field(default_factory=list)
    extra_devices: list[str] = field(default_factory=list)
    precision: str = "fp16"
    fp32_ops: list[str] = field(default_factory=list)
    samples: int | None = None
    trust_pickle: bool = False
    divergence_samples: int = 4
    seed: int = 0
    package_path: Path | None = None
    force: bool = False
    # conversion options beyond precision (see devicefit.convert.ConvertOptions)
    all_frontends: bool = False  # also try the frontends after the first that converts, to report each one
    image_inputs: dict[str, Any] = field(default_factory=dict)
    flexible: dict[str, Any] = field(default_factory=dict)
    output_names: list[str] | None = None
    fp16_safe_constants: bool = True  # map out-of-fp16-range constants (-inf mask fills) to safe values
    repair: bool = True
    class_axes: dict[str, int | None] = field(default_factory=dict)


@dataclass
class ConvertSummary:
    """Outcome of the conversion step."""

    ok: bool
    frontend: str | None = None
    seconds: float | None = None
    error: str | None = None
    unsupported: list[dict[str, Any]] = field(default_factory=list)
    rescued: list[str] = field(default_factory=list)
    skipped: bool = False
    # one entry per conversion frontend: {"name", "status": converted|failed|not tried, "error", "seconds"}
    frontends: list[dict[str, Any]] = field(default_factory=list)
    # torch's TracerWarnings ("file.py:line: message") when the TorchScript frontend converted: Python-side
    # control flow / numbers frozen at the example input
    trace_warnings: list[str] = field(default_factory=list)


@dataclass
class CheckResult:
    """Everything ``check`` measured; None for parts that could not run (e.g. after a failed conversion)."""

    options: CheckOptions
    origin: str
    kind: str
    convert: ConvertSummary
    mlmodel: Any = None
    program: Any = None
    dataset: Any = None
    fp32: Any = None
    fp16: Any = None
    divergence: Any = None
    trained: Any = None
    size: Any = None
    memory: Any = None
    fits: list[Any] = field(default_factory=list)
    working_set_bytes: int | None = None
    ane_lint: Any = None
    latency: list[Any] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    # numerics question name -> devicefit.check.numerics.Question (conversion fidelity, weight storage,
    # compute precision)
    questions: dict[str, Any] = field(default_factory=dict)
    # inf/NaN in the validation data: one line per input, and the samples left out of the comparisons
    data_findings: list[str] = field(default_factory=list)
    bad_samples: list[int] = field(default_factory=list)
    # the computed fp16 fix (devicefit.check.repair.Fp16Fix) when fp16 compute fails
    repair: Any = None
    # area -> Verdict (see devicefit.check.verdicts); the report renders them.
    verdicts: dict[str, Any] = field(default_factory=dict)
    # Filled by further analyses; copied as-is into the JSON report under "extras".
    extras: dict[str, Any] = field(default_factory=dict)
