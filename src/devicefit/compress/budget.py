"""Accuracy budgets: ``"accuracy>=-0.5%"``, ``"cosine>=0.999"``, ``"psnr>=40"``, and how to measure them.

* ``accuracy``: task accuracy with labels. A signed value is a drop in percentage points from the original
  model's accuracy and must carry ``%`` (``-0.5%``); an unsigned one (``97%``, ``0.97``) is absolute.
* ``cosine``: cosine similarity of the compressed model's outputs (run in fp16) with the original's (run in
  fp32), over all samples flattened; the worst output counts.
* ``psnr``: peak SNR in dB (``compare.metrics.psnr_db``), same pairing; the worst output counts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from devicefit.errors import InputError

METRICS = ("accuracy", "cosine", "psnr")
# Slack when comparing a metric with its bound: 149/300 vs 152/300 - 1% differ by one float rounding step.
SLACK = 1e-12
# An unsigned accuracy percentage below this is almost surely a relative budget missing its minus sign.
_MIN_ABSOLUTE_PCT = 10.0
_RE = re.compile(r"^\s*([a-z][a-z0-9_]*)\s*>=\s*([+-]?)\s*(\d+(?:\.\d*)?|\.\d+)\s*(%?)\s*$")


@dataclass(frozen=True)
class Budget:
    """A lower bound on a quality metric.

    Attributes:
        metric: ``"accuracy"``, ``"cosine"`` or ``"psnr"``.
        value: the bound (a fraction for accuracy and cosine, dB for psnr).
        relative: the bound is a change from the original model's value (accuracy only).
        text: the text it was parsed from.
    """

    metric: str
    value: float
    relative: bool = False
    text: str = ""

    def threshold(self, baseline: float | None) -> float:
        """The absolute bound, given the original model's metric value (needed when ``relative``)."""
        if not self.relative:
            return self.value
        if baseline is None:
            raise InputError(f"budget {self.text!r} is relative; it needs the original model's {self.metric}")
        return baseline + self.value

    @property
    def needs_labels(self) -> bool:
        return self.metric == "accuracy"


def meets(value: float, threshold: float) -> bool:
    """Whether a measured metric reaches a budget's bound, allowing for float rounding (``SLACK``)."""
    return value >= threshold - SLACK


def parse_budget(text: str) -> Budget:
    """Parse a budget string.

    Raises:
        InputError: unknown metric, a bound out of range, or a form the metric does not take.
    """
    match = _RE.match(text or "")
    if not match:
        raise InputError(
            f"bad budget {text!r}; expected METRIC>=VALUE, e.g. accuracy>=-0.5%, cosine>=0.999, psnr>=40"
        )
    metric, sign, number, pct = match.groups()
    if metric not in METRICS:
        raise InputError(f"unknown budget metric {metric!r}; use one of {', '.join(METRICS)}")
    value = float(number) / (100.0 if pct else 1.0)
    if sign == "-":
        value = -value
    if metric == "accuracy":
        return _accuracy_budget(text, sign, number, pct, value)
    if sign or pct:
        raise InputError(
            f"a {metric} budget is an absolute bound like {metric}>={'0.999' if metric == 'cosine' else '40'}"
        )
    if metric == "cosine" and not 0.0 < value <= 1.0:
        raise InputError(f"cosine budget {text!r} must be in (0, 1]")
    if metric == "psnr" and value <= 0:
        raise InputError(f"psnr budget {text!r} must be a positive number of dB")
    return Budget(metric, value, text=text)


def _accuracy_budget(text: str, sign: str, number: str, pct: str, value: float) -> Budget:
    if sign == "+":
        raise InputError(f"budget {text!r} asks for a gain; a relative accuracy budget is a drop like -0.5%")
    if sign and not pct:
        # "-0.5" could mean half a point or 50 points; only the % form says which.
        raise InputError(
            f"relative accuracy budget {text!r} needs a %: write accuracy>=-{number}% for a drop of {number} "
            "percentage points from the original model"
        )
    if not -1.0 <= value <= 1.0:
        raise InputError(f"accuracy budget {text!r} out of range; give a fraction or a percentage")
    if pct and not sign and float(number) < _MIN_ABSOLUTE_PCT:
        raise InputError(
            f"accuracy budget {text!r} is an absolute accuracy of {number}%, which almost any model meets; "
            f"for a drop from the original model write accuracy>=-{number}%"
        )
    return Budget("accuracy", value, relative=bool(sign), text=text)


def _float_outputs(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v for k, v in outputs.items() if np.asarray(v).dtype.kind == "f"}


def measure(
    metric: str,
    candidate: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    labels: np.ndarray | None,
    first_output: str,
) -> float:
    """The budget metric of stacked candidate outputs against stacked reference outputs (or labels)."""
    from devicefit.compare.metrics import accuracy, cosine_similarity, psnr_db

    if metric == "accuracy":
        if labels is None:
            raise InputError(
                "an accuracy budget needs labelled data; give --data with labels or use cosine / psnr"
            )
        return float(accuracy(labels, candidate[first_output]).value or 0.0)
    fn = cosine_similarity if metric == "cosine" else psnr_db
    values = []
    for name, ref in _float_outputs(reference).items():
        cand = np.asarray(candidate[name], dtype=np.float64)
        if not np.isfinite(cand).all():
            return -math.inf if metric == "psnr" else 0.0
        values.append(float(fn(ref, cand).value or 0.0))
    return min(values) if values else math.nan


def noise(candidate: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> float:
    """Relative output noise ``sum((c - r)^2) / sum(r^2)`` over float outputs (inf when non-finite)."""
    num = den = 0.0
    for name, ref in _float_outputs(reference).items():
        r = np.asarray(ref, dtype=np.float64)
        c = np.asarray(candidate[name], dtype=np.float64)
        if not np.isfinite(c).all():
            return math.inf
        num += float(np.sum((c - r) ** 2))
        den += float(np.sum(r**2))
    return num / den if den > 0 else (0.0 if num == 0 else math.inf)


# Safety margin: a candidate must pass with MARGIN_Z standard errors to spare (one-sided ~98%), so that a plan
# chosen on the calibration samples still meets the budget on fresh samples of the same distribution.
MARGIN_Z = 2.0


def per_sample(
    metric: str,
    candidate: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    labels: np.ndarray | None,
    first_output: str,
) -> np.ndarray:
    """The budget metric of each sample (axis 0 of the stacked outputs); the worst output per sample."""
    from devicefit.compare.metrics import cosine_similarity, psnr_db

    if metric == "accuracy":
        # paired with the reference: +1 / -1 where only one of the two is right. The margin then measures
        # how uncertain the *change* the compression makes is, not the model's own binomial spread.
        scores = np.asarray(candidate[first_output], dtype=np.float64)
        ref_scores = np.asarray(reference[first_output], dtype=np.float64)
        n = scores.shape[0]
        rows = np.asarray(labels).reshape(n, -1) if labels is not None else np.zeros((n, 1), dtype=int)
        right = (scores.reshape(n, -1, scores.shape[-1]).argmax(-1) == rows).mean(axis=1)
        ref_right = (ref_scores.reshape(n, -1, ref_scores.shape[-1]).argmax(-1) == rows).mean(axis=1)
        return (right - ref_right).astype(np.float64)
    fn = cosine_similarity if metric == "cosine" else psnr_db
    worst: np.ndarray | None = None
    for name, ref in _float_outputs(reference).items():
        cand = np.asarray(candidate[name], dtype=np.float64)
        values = np.array(
            [
                float(fn(ref[i], cand[i]).value or 0.0) if np.isfinite(cand[i]).all() else -np.inf
                for i in range(len(ref))
            ]
        )
        worst = values if worst is None else np.minimum(worst, values)
    return worst if worst is not None else np.zeros(0)


def margin(values: np.ndarray) -> float:
    """``MARGIN_Z`` standard errors of the mean of per-sample metric values (0 for fewer than 2 samples).

    The budget metric is measured on a finite calibration set; its standard error is how far a fresh set
    of the same size may land from it. Infinite values (a perfect psnr) carry no spread.
    """
    finite = values[np.isfinite(values)]
    if len(finite) < 2:
        return 0.0
    return float(MARGIN_Z * finite.std(ddof=1) / math.sqrt(len(finite)))
