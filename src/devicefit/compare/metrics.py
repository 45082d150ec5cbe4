"""Numeric comparison metrics: one tiny named function each, in a name -> function table.

Every metric takes the reference array first and the candidate second (plus keyword tolerances) and
returns a :class:`MetricResult` carrying the number and a verdict (``bool(result)`` is the verdict).
Arrays of any shape are compared elementwise as float64; classification metrics take the class axis
(``axis``, the last by default; :mod:`.class_axis` decides it per output) and treat every other axis as
samples: a segmentation map's every pixel, a token classifier's every position, is one sample.

Near-tie rule for top-k agreement (see docs/metrics.md): for each sample, let ``s_k`` be the reference's
k-th largest score, ``m = max(|s_1|, |s_k|)`` (finite scores only) and ``sigma`` the candidate's rounding
noise, measured robustly (``1.4826 * median |c - r|``: a few large genuine errors do not move a median) over
the whole output and over each row's reference top-(k+1) scores, whichever is larger (fp16 rounds relative
to magnitude: the top scores carry the largest errors). Then ``tie = max(tie_rtol * m, min(noise_z * sigma, tie_cap * m)) + tie_atol``. The
*accepted set* is every class whose reference score is ``>= s_k - tie`` (the reference top-k, extended by
near-ties). The candidate agrees on that sample when its own top-k classes all lie in the accepted set. So
swapping two classes whose reference scores are closer than the candidate can resolve (one fp16 step of the
top score, or the noise its computation carries: fp16 compute through a network leaves each logit ~10x
coarser than one step of its own) is not a disagreement; a swap across a larger gap still is.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MetricFn = Callable[..., "MetricResult"]
METRICS: dict[str, MetricFn] = {}


@dataclass
class MetricResult:
    """One metric's value and verdict.

    Attributes:
        name: metric name (the key in :data:`METRICS`).
        value: the number (None when the metric does not apply, e.g. top-5 of a 3-class output).
        threshold: the bound the verdict used (None: informational, always passes).
        higher_is_better: direction of ``threshold``.
        details: extra numbers (counts, the tie tolerance used...).
    """

    name: str
    value: float | None
    threshold: float | None = None
    higher_is_better: bool = True
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        if self.value is not None and math.isnan(self.value):
            return False  # NaN fails even an informational metric: something produced NaN
        if self.value is None or self.threshold is None:
            return True
        return self.value >= self.threshold if self.higher_is_better else self.value <= self.threshold

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        value = self.value
        if value is not None and not math.isfinite(value):
            value = None if math.isnan(value) else (1e308 if value > 0 else -1e308)
        return {
            "value": value,
            "threshold": self.threshold,
            "higher_is_better": self.higher_is_better,
            "passed": self.passed,
            **({"details": self.details} if self.details else {}),
        }


def metric(name: str) -> Callable[[MetricFn], MetricFn]:
    """Register ``fn`` under ``name`` in :data:`METRICS`."""

    def deco(fn: MetricFn) -> MetricFn:
        METRICS[name] = fn
        return fn

    return deco


def _pair(reference: Any, candidate: Any) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(candidate, dtype=np.float64)
    if r.shape != c.shape:
        raise ValueError(f"shape mismatch: reference {r.shape} vs candidate {c.shape}")
    return r, c


@metric("max_abs_error")
def max_abs_error(reference: Any, candidate: Any, tol: float | None = None) -> MetricResult:
    """max |candidate - reference| (NaN when either side has a NaN where the other does not)."""
    r, c = _pair(reference, candidate)
    diff = np.abs(c - r)
    value = float(np.nan if np.isnan(diff).any() else diff.max(initial=0.0))
    return MetricResult("max_abs_error", value, tol, higher_is_better=False)


@metric("max_rel_error")
def max_rel_error(reference: Any, candidate: Any, tol: float | None = None) -> MetricResult:
    """max |candidate - reference| / max |reference|: error relative to the output's scale.

    An all-zero reference has no scale: the error is then absolute (a 1e-7 residue where PyTorch computes an
    exact 0 is not an error of 1e23).
    """
    r, c = _pair(reference, candidate)
    diff = np.abs(c - r)
    peak = float(np.abs(r).max(initial=0.0))
    scale = peak if peak > 0.0 else 1.0
    value = float(np.nan if np.isnan(diff).any() else diff.max(initial=0.0) / scale)
    return MetricResult("max_rel_error", value, tol, higher_is_better=False)


def _decibels(signal_power: float, noise_power: float) -> float:
    """10·log10(signal / noise): inf for no noise, -inf for no signal, NaN when the noise is NaN."""
    if math.isnan(noise_power):
        return math.nan
    if noise_power == 0.0:
        return math.inf
    if signal_power == 0.0:
        return -math.inf
    ratio = signal_power / noise_power
    if math.isnan(ratio):  # inf / inf: overflowing signal and noise, no meaningful ratio
        return math.nan
    # an overflowed (inf) noise or an underflowed ratio reports -inf (the worst value) instead of crashing log10
    return -math.inf if ratio == 0.0 else 10.0 * math.log10(ratio)


_ALL_ZERO = "the reference is all zero: undefined; max_rel_error compares absolutely"


@metric("snr_db")
def snr_db(reference: Any, candidate: Any, tol: float | None = None) -> MetricResult:
    """Signal-to-noise ratio 10·log10(Σ reference² / Σ (candidate - reference)²), in dB (inf when equal)."""
    r, c = _pair(reference, candidate)
    if not r.any() and c.any() and np.isfinite(c).all():  # no signal: no ratio (max_rel_error judges it)
        return MetricResult("snr_db", None, tol, True, {"reason": _ALL_ZERO})
    value = _decibels(float(np.sum(r**2)), float(np.sum((c - r) ** 2)))
    return MetricResult("snr_db", value, tol, higher_is_better=True)


@metric("psnr_db")
def psnr_db(reference: Any, candidate: Any, tol: float | None = None) -> MetricResult:
    """Peak SNR 20·log10(range / RMSE) with range = max(reference) - min(reference), in dB."""
    r, c = _pair(reference, candidate)
    mse = float(np.mean((c - r) ** 2)) if r.size else 0.0
    peak = float(r.max() - r.min()) if r.size else 0.0
    if peak == 0.0 and 0.0 < mse < math.inf:  # a constant reference has no range: no peak ratio
        return MetricResult("psnr_db", None, tol, True, {"reason": "the reference is constant: undefined"})
    # amplitudes, not powers (peak**2 would overflow for huge ranges): 20·log10(a/b) = 2 · 10·log10(a/b)
    return MetricResult("psnr_db", 2.0 * _decibels(peak, math.sqrt(mse)), tol, higher_is_better=True)


@metric("cosine_similarity")
def cosine_similarity(reference: Any, candidate: Any, tol: float | None = None) -> MetricResult:
    """Cosine of the angle between the flattened arrays (1.0 when both are all zero)."""
    r, c = _pair(reference, candidate)
    nr, nc = float(np.linalg.norm(r)), float(np.linalg.norm(c))
    if not (math.isfinite(nr) and math.isfinite(nc)):
        value = math.nan  # NOTE: an inf / NaN output has no angle; NaN fails the bound (inf / inf warned)
    elif nr == 0.0 and nc == 0.0:
        value = 1.0
    elif nr == 0.0:  # no direction to compare with (max_rel_error judges it, absolute)
        return MetricResult("cosine_similarity", None, tol, True, {"reason": _ALL_ZERO})
    elif nc == 0.0:
        value = 0.0
    else:
        value = float(r.ravel() @ c.ravel() / (nr * nc))
    return MetricResult("cosine_similarity", value, tol, higher_is_better=True)


def _rows(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """One row per sample position, classes along the row."""
    if not a.ndim:
        return a.reshape(1, 1)
    return np.moveaxis(a, axis, -1).reshape(-1, a.shape[axis])


# Noise-aware near-ties: a swap needs noise_z = 3 * sqrt(2) sigmas of the difference of two noisy scores to
# count as a tie (a 0.13% chance that pure noise of sigma swaps a wider gap); the window never passes
# tie_cap of the top score (1%): noise that large is not a near-tie question, the SNR bound judges it.
NOISE_Z = 3.0 * math.sqrt(2.0)
TIE_CAP = 1e-2


def score_noise(reference: Any, candidate: Any) -> float:
    """The candidate's typical score error: ``1.4826 * median |c - r|`` over the finite pairs (a Gaussian's sigma).

    A median, so that a few large genuine errors (a wrong class, a broken row) do not pass for rounding noise.
    """
    r, c = _pair(reference, candidate)
    both = np.isfinite(r) & np.isfinite(c)
    return float(1.4826 * np.median(np.abs(c[both] - r[both]))) if both.any() else 0.0


def top_noise(reference_rows: Any, candidate_rows: Any, k: int) -> float:
    """The candidate's typical error *at the scores in contention*: robust sigma over each row's reference top-(k+1).

    NOTE: fp16 rounds each value relative to its own magnitude, so the largest scores of a row carry the
    largest errors; the median over every element (:func:`score_noise`) reads the typical, smaller, score. On
    unit-variance features with 1% relative noise (40 dB SNR, within every bound) the whole-output sigma is
    ~4x below the error of the top scores, and swaps fp16 cannot resolve read as disagreements (top-1 0.977).
    A median over rows still keeps a few rows with a genuinely wrong top score from passing for noise.
    """
    r, c = _pair(reference_rows, candidate_rows)
    if r.ndim != 2 or not r.size:
        return 0.0
    width = min(k + 1, r.shape[1])
    # the top-(k+1) in any order: a partition, not a sort of a whole 32k-word vocabulary row
    top = np.argpartition(-np.nan_to_num(r, nan=-np.inf), width - 1, axis=1)[:, :width]
    return score_noise(np.take_along_axis(r, top, axis=1), np.take_along_axis(c, top, axis=1))


def tie_noise(reference_rows: Any, candidate_rows: Any, k: int) -> float:
    """The noise top-k's near-tie window uses: the whole output's or the top scores' (:func:`top_noise`), the larger."""
    return max(score_noise(reference_rows, candidate_rows), top_noise(reference_rows, candidate_rows, k))


def topk_accepted(
    reference_rows: np.ndarray,
    k: int,
    noise: float = 0.0,
    tie_rtol: float = 1e-3,
    tie_atol: float = 1e-6,
    noise_z: float = NOISE_Z,
    tie_cap: float = TIE_CAP,
) -> np.ndarray:
    """Per row (one sample, classes along it): which classes are the reference's top-k extended by near-ties."""
    ordered = -np.sort(-reference_rows, axis=1)
    kth = ordered[:, k - 1]
    # The tie window scales with the magnitude of the top scores (finite ones only): the row's largest
    # |score| would let one huge negative logit or a masked -inf widen the window to everything.
    top = np.where(np.isfinite(ordered[:, 0]), np.abs(ordered[:, 0]), 0.0)
    kth_mag = np.where(np.isfinite(kth), np.abs(kth), 0.0)
    scale = np.maximum(top, kth_mag)
    tie = np.maximum(tie_rtol * scale, np.minimum(noise_z * noise, tie_cap * scale)) + tie_atol
    return reference_rows >= (kth - tie)[:, None]


def topk_agreement(
    reference: Any,
    candidate: Any,
    k: int,
    tol: float | None = None,
    tie_rtol: float = 1e-3,
    tie_atol: float = 1e-6,
    axis: int = -1,
    noise_z: float = NOISE_Z,
    tie_cap: float = TIE_CAP,
) -> MetricResult:
    """Fraction of sample positions whose candidate top-k lies in the reference top-k extended by near-ties.

    See the module docstring for the rule (``noise_z=0`` turns the measured-noise part off). ``axis`` is the
    class axis; every other axis indexes samples (for ``N x C x H x W`` segmentation logits and ``axis=1``
    the value is the fraction of agreeing pixels). The metric is None for outputs with fewer than ``k + 1``
    classes (top-k of k classes always agrees).
    """
    r, c = _pair(reference, candidate)
    name = f"top{k}_agreement"
    if r.ndim == 0 or r.shape[axis] <= k:
        return MetricResult(name, None, tol, details={"reason": f"needs more than {k} classes"})
    rr, cr = _rows(r, axis), _rows(c, axis)
    noise = tie_noise(rr, cr, k)
    accepted = topk_accepted(rr, k, noise, tie_rtol, tie_atol, noise_z, tie_cap)
    # NOTE: argsort of -x puts NaN last, so a NaN candidate row picks arbitrary classes and mostly disagrees.
    cand_top = np.argsort(-np.nan_to_num(cr, nan=-np.inf), axis=1, kind="stable")[:, :k]
    agree = np.take_along_axis(accepted, cand_top, axis=1).all(axis=1) & ~np.isnan(cr).any(axis=1)
    value = float(agree.mean()) if len(agree) else math.nan
    details = {
        "samples": len(agree),
        "disagreeing": int((~agree).sum()),
        "tie_rtol": tie_rtol,
        "noise": noise,
    }
    if r.ndim > 2:  # dense: say which axis held the classes and how many positions each sample has
        details.update(class_axis=axis % r.ndim, positions_per_sample=len(agree) // max(r.shape[0], 1))
    return MetricResult(name, value, tol, higher_is_better=True, details=details)


@metric("top1_agreement")
def top1_agreement(reference: Any, candidate: Any, tol: float | None = None, **kw: Any) -> MetricResult:
    """Top-1 agreement with near-ties accepted (see :func:`topk_agreement`)."""
    return topk_agreement(reference, candidate, 1, tol, **kw)


@metric("top5_agreement")
def top5_agreement(reference: Any, candidate: Any, tol: float | None = None, **kw: Any) -> MetricResult:
    """Top-5 agreement with near-ties accepted (see :func:`topk_agreement`)."""
    return topk_agreement(reference, candidate, 5, tol, **kw)


def argmax_iou(reference: Any, candidate: Any, axis: int = -1, tol: float | None = None) -> MetricResult:
    """Mean over classes of the IoU between the reference's and the candidate's argmax maps.

    For dense outputs (segmentation): per-pixel agreement can stay high while a small class is lost; the
    mean IoU of the two argmax maps (over classes either map predicts) shows it. Informational unless
    ``tol`` is given: argmax maps do not accept near-ties, so a near-tied pixel may lower it legitimately.
    Not in :data:`METRICS` (it needs the class axis; :func:`devicefit.compare.validate.compare_arrays`
    adds it to dense outputs).
    """
    r, c = _pair(reference, candidate)
    rows_r, rows_c = _rows(r, axis), _rows(c, axis)
    if np.isnan(rows_c).any():
        return MetricResult("argmax_iou", math.nan, tol, details={"reason": "NaN in the candidate"})
    a, b = rows_r.argmax(axis=1), rows_c.argmax(axis=1)
    classes = np.union1d(a, b)
    ious = [float(((a == k) & (b == k)).sum() / ((a == k) | (b == k)).sum()) for k in classes]
    worst = int(classes[int(np.argmin(ious))]) if ious else None
    value = float(np.mean(ious)) if ious else math.nan
    details = {"classes": len(classes), "worst_class": worst, "worst_iou": min(ious) if ious else None}
    return MetricResult("argmax_iou", value, tol, higher_is_better=True, details=details)


def accuracy(labels: Any, scores: Any, tol: float | None = None, axis: int = -1) -> MetricResult:
    """Task accuracy: fraction of sample positions whose argmax over the class axis equals the integer label.

    ``labels`` hold one class per position (``N`` for ``N x C`` scores, ``N x H x W`` for ``N x C x H x W``
    segmentation logits with ``axis=1``). Not in :data:`METRICS` (it compares with labels, not with a
    reference output).
    """
    y = np.asarray(labels).reshape(-1)
    s = _rows(np.asarray(scores, dtype=np.float64), axis)
    if len(y) != len(s):
        raise ValueError(f"{len(y)} labels for {len(s)} predicted samples")
    value = float((s.argmax(axis=1) == y).mean()) if len(y) else math.nan
    return MetricResult("accuracy", value, tol, higher_is_better=True, details={"samples": len(y)})


def exact_match(reference: Any, candidate: Any, tol: float | None = None) -> MetricResult:
    """Fraction of elements equal to the reference's, for outputs holding integers or booleans (ids, masks, counts).

    A mask bit or an id is right or wrong: cosine and relative errors of 0/1 values say nothing (one flipped
    bit of 4096 is a max relative error of 1). Not in :data:`METRICS` (:func:`devicefit.compare.validate.compare`
    applies it to the outputs PyTorch returns as integers or booleans).
    """
    r, c = _pair(reference, candidate)
    same = r == c  # NOTE: NaN never equals: a NaN where an id belongs is a mismatch
    value = float(same.mean()) if same.size else None
    details = {"elements": int(same.size), "mismatched": int((~same).sum())}
    return MetricResult("exact_match", value, tol, True, details)


def index_agreement(
    reference: Any,
    candidate: Any,
    tol: float | None = None,
    ref_values: Any = None,
    cand_values: Any = None,
    tie_rtol: float = 1e-3,
) -> MetricResult:
    """Fraction of index outputs (argmax labels, topk / argsort indices) equal to the reference's.

    Reported as ``top1_agreement``. With the scores the indices select (topk's values output, rows along the
    last axis), a differing position still agrees when it is a near-tie swap: the candidate's index sits
    elsewhere in the reference's row with a score within ``tie`` of this position's reference score, or it is
    outside the reference's row, this position's reference score is within ``tie`` of the row's last (k-th)
    score and the candidate's score for it is within ``tie`` too. ``tie`` is the larger of ``tie_rtol * max |row
    score|`` (the rule of :func:`topk_agreement`) and the largest error of the candidate's scores themselves:
    scores that close cannot be ordered at the candidate's precision. Right scores with wrong indices still
    disagree (their score error is zero).
    """
    r = np.asarray(reference)
    c = np.asarray(candidate).reshape(r.shape)
    same = r == c
    ties = 0
    if ref_values is not None and cand_values is not None and r.ndim >= 1 and r.size:
        rows_r, rows_c = r.reshape(-1, r.shape[-1]), c.reshape(-1, r.shape[-1])
        rv = np.asarray(ref_values, dtype=np.float64).reshape(rows_r.shape)
        cv = np.asarray(cand_values, dtype=np.float64).reshape(rows_r.shape)
        flat = same.reshape(rows_r.shape).copy()
        both = np.isfinite(rv) & np.isfinite(cv)
        score_error = float(np.abs(cv - rv)[both].max(initial=0.0))
        for row, p in zip(*np.nonzero(~flat), strict=True):
            tie = max(tie_rtol * float(np.abs(rv[row]).max()), score_error)
            where = np.nonzero(rows_r[row] == rows_c[row, p])[0]
            if where.size:
                swap = abs(rv[row, where[0]] - rv[row, p]) <= tie
            else:
                swap = abs(rv[row, p] - rv[row, -1]) <= tie and abs(cv[row, p] - rv[row, p]) <= tie
            if swap:
                flat[row, p] = True
                ties += 1
        same = flat.reshape(r.shape)
    value = float(same.mean()) if same.size else None
    details = {"elements": int(same.size), "disagreeing": int((~same).sum()), "near_tie_swaps": ties}
    return MetricResult("top1_agreement", value, tol, True, details)
