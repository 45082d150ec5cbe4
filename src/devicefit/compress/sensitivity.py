"""Per-layer sensitivity: compress one weight at a time and measure what it costs at the output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from devicefit.compress.evaluate import Executor
from devicefit.convert.provenance import Origin, where


@dataclass
class LayerSensitivity:
    """One weight's sensitivity.

    Attributes:
        weight: the weight constant's name.
        layer: the op reading it (``name (type)``).
        numel: elements.
        bytes: choice label -> stored bytes of this weight at that choice.
        metric: choice label -> budget metric with only this weight compressed that way.
        noise: choice label -> relative output noise (``sum(err^2) / sum(ref^2)``) likewise.
        origin: the PyTorch module the weight belongs to (None: the package carries no provenance for it).
    """

    weight: str
    layer: str
    numel: int
    bytes: dict[str, int] = field(default_factory=dict)
    metric: dict[str, float] = field(default_factory=dict)
    noise: dict[str, float] = field(default_factory=dict)
    origin: Origin | None = None

    @property
    def where(self) -> str:
        """What a user reads: PyTorch module, type and line, the MIL op after it (the op alone if unknown)."""
        return where(self.origin, self.layer)

    def to_dict(self) -> dict[str, Any]:
        return {
            "weight": self.weight,
            "layer": self.layer,
            "where": self.where,
            "origin": self.origin.to_dict() if self.origin is not None else None,
            "numel": self.numel,
            "bytes": self.bytes,
            "metric": self.metric,
            "noise": self.noise,
        }


@dataclass
class Sensitivity:
    """Per-layer sensitivities for each compression choice, with the uncompressed (fp16) base value."""

    metric_name: str
    choices: list[str]
    base_metric: float
    layers: list[LayerSensitivity]
    samples: int | None = None  # calibration samples measured on (None: all of them)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric_name,
            "choices": self.choices,
            "base_metric": self.base_metric,
            "samples": self.samples,
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def most_sensitive(self, choice: str) -> list[LayerSensitivity]:
        """Layers ordered by the noise ``choice`` causes, worst first."""
        return sorted(self.layers, key=lambda s: -s.noise.get(choice, 0.0))


def measure_sensitivity(
    executor: Executor,
    layers: list[LayerSensitivity],
    choices: list[str],
    metric_name: str,
    base_metric: float,
    progress: Any = None,
    samples: int | None = None,
) -> Sensitivity:
    """Evaluate every (layer, choice) alone, other weights uncompressed; fills ``layers`` in place.

    ``samples``: on the first that many calibration samples only (None: all); ``base_metric`` must be the fp16
    base measured on the same samples.
    """
    jobs = [(layer, c) for layer in layers for c in choices if c != "fp16"]
    batch = 8
    for start in range(0, len(jobs), batch):
        chunk = jobs[start : start + batch]
        results = executor.evaluate([{layer.weight: c} for layer, c in chunk], samples)
        for (layer, c), m in zip(chunk, results):
            layer.metric[c] = m.metric
            layer.noise[c] = m.noise
        if progress is not None:
            progress("sensitivity", min(start + batch, len(jobs)), len(jobs))
    for layer in layers:
        layer.metric["fp16"] = base_metric
        layer.noise["fp16"] = 0.0
    return Sensitivity(metric_name, choices, base_metric, layers, samples)
