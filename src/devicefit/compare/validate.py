"""Compare a model's outputs with a reference, per output, with the metrics of :mod:`.metrics`.

Tolerances live here, next to what they govern: ``fp32`` compares PyTorch with the interpreter computing in
float32 (conversion fidelity, should be near exact), ``fp16`` with the interpreter emulating fp16 storage
(precision loss, looser).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from devicefit.compare.metrics import METRICS, MetricResult, accuracy

# metric -> bound used for the verdict, per comparison. Classification metrics only apply to float
# outputs with a class axis (last axis > k).
TOLERANCES: dict[str, dict[str, float]] = {
    "fp32": {
        # Relative to the output's scale: ill-conditioned graphs legitimately reach ~1e-3 in fp32 from
        # reordered sums alone; SNR and cosine catch real conversion bugs.
        "max_rel_error": 1e-2,
        "snr_db": 60.0,
        "cosine_similarity": 0.99999,
        "top1_agreement": 0.999,
        "top5_agreement": 0.999,
    },
    "fp16": {
        "max_rel_error": 5e-2,
        "snr_db": 30.0,
        "cosine_similarity": 0.999,
        "top1_agreement": 0.99,
        "top5_agreement": 0.99,
    },
}
# Accuracy may drop at most this much (absolute) below the reference's accuracy on the same data.
ACCURACY_DROP = 0.01


@dataclass
class OutputComparison:
    """All metrics for one output."""

    output: str
    metrics: dict[str, MetricResult]

    @property
    def passed(self) -> bool:
        return all(bool(m) for m in self.metrics.values())

    def __bool__(self) -> bool:
        return self.passed


@dataclass
class Comparison:
    """One comparison (e.g. ``fp16``: fp16 interpreter vs reference) over every output.

    Attributes:
        name: ``"fp32"`` or ``"fp16"``.
        reference: what was compared against (``"pytorch"`` or ``"interp-fp32"``).
        outputs: per-output metrics.
        accuracy: task accuracy of the candidate on labelled data (None without labels).
        reference_accuracy: the reference's accuracy on the same data.
    """

    name: str
    reference: str
    outputs: list[OutputComparison]
    accuracy: MetricResult | None = None
    reference_accuracy: float | None = None
    samples: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        ok = all(bool(o) for o in self.outputs)
        return ok and (self.accuracy is None or bool(self.accuracy))

    def __bool__(self) -> bool:
        return self.passed

    def worst(self, metric: str) -> float | None:
        """The worst value of ``metric`` over the outputs (None when it applies to none)."""
        values = [o.metrics[metric] for o in self.outputs if metric in o.metrics]
        values = [m for m in values if m.value is not None]
        if not values:
            return None
        key = [m.value for m in values]
        if any(isinstance(v, float) and math.isnan(v) for v in key):
            return math.nan  # NaN is the worst value; min/max would depend on the output order
        return min(key) if values[0].higher_is_better else max(key)  # type: ignore[type-var]


def compare_arrays(
    reference: np.ndarray, candidate: np.ndarray, tolerances: dict[str, float]
) -> dict[str, MetricResult]:
    """Every applicable metric of :data:`METRICS` for one pair of arrays."""
    ref = np.asarray(reference)
    classy = ref.dtype.kind == "f" and ref.ndim >= 1 and ref.shape[-1] > 1
    out: dict[str, MetricResult] = {}
    for name, fn in METRICS.items():
        if name.startswith("top") and not classy:
            continue
        result = fn(reference, candidate, tol=tolerances.get(name))
        if result.value is not None or not name.startswith("top"):
            out[name] = result
    return out


def stack_samples(per_sample: list[dict[str, Any]], names: list[str]) -> dict[str, np.ndarray]:
    """Concatenate each output over samples along axis 0 (a batch axis is added to 0-d outputs)."""
    stacked: dict[str, np.ndarray] = {}
    for name in names:
        parts = [np.asarray(s[name]) for s in per_sample]
        parts = [p.reshape(1) if p.ndim == 0 else p for p in parts]
        stacked[name] = np.concatenate(parts, axis=0) if parts else np.zeros(0)
    return stacked


def match_outputs(reference_names: list[str], candidate_names: list[str]) -> list[tuple[str, str]]:
    """Pair reference outputs with candidate outputs: by name when all match, else by position."""
    if set(reference_names) <= set(candidate_names):
        return [(n, n) for n in reference_names]
    return list(zip(reference_names, candidate_names))


def compare(
    name: str,
    reference: dict[str, np.ndarray],
    candidate: dict[str, np.ndarray],
    reference_label: str,
    labels: np.ndarray | None = None,
    tolerances: dict[str, float] | None = None,
) -> Comparison:
    """Compare stacked outputs (see :func:`stack_samples`) and, with labels, task accuracy.

    Args:
        name: comparison name (``"fp32"`` / ``"fp16"``); picks the default tolerances.
        reference: output name -> stacked reference array.
        candidate: output name -> stacked candidate array (names matched by :func:`match_outputs`).
        reference_label: what the reference is, for the report.
        labels: integer class labels, one per sample row of the first output.
        tolerances: override :data:`TOLERANCES` entries.
    """
    tol = {**TOLERANCES.get(name, {}), **(tolerances or {})}
    pairs = match_outputs(list(reference), list(candidate))
    outputs = []
    for ref_name, cand_name in pairs:
        ref = reference[ref_name]
        cand = (
            candidate[cand_name].astype(np.float64)
            if candidate[cand_name].dtype.kind == "f"
            else candidate[cand_name]
        )
        if ref.shape != cand.shape and ref.size == cand.size:
            cand = cand.reshape(ref.shape)
        outputs.append(OutputComparison(cand_name, compare_arrays(ref, cand, tol)))
    result = Comparison(name, reference_label, outputs, samples=len(next(iter(reference.values()), [])))
    if labels is not None and pairs:
        ref_name, cand_name = pairs[0]
        ref_acc = accuracy(labels, reference[ref_name]).value
        floor = None if ref_acc is None else ref_acc - ACCURACY_DROP
        result.accuracy = accuracy(labels, candidate[cand_name], tol=floor)
        result.reference_accuracy = ref_acc
    return result
