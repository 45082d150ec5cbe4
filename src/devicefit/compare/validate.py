"""Compare a model's outputs with a reference, per output, with the metrics of :mod:`.metrics`.

Tolerances live here, next to what they govern (reasoning in docs/metrics.md). Three questions, each with
its own bounds, so a verdict names the cause:

* ``fp32`` (*conversion fidelity*): an fp32 conversion (fp32 weights, fp32 compute) vs PyTorch: near exact.
* ``storage`` (*weight storage loss*): the shipped package's weights (fp16 or compressed), computed in fp32,
  vs PyTorch.
* ``compute`` (*compute precision loss*): the shipped package emulating fp16 vs the same package in fp32.

``fp16`` is the end-to-end comparison (the shipped package emulating fp16 vs PyTorch).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from devicefit.compare import class_axis, padding
from devicefit.compare.metrics import (
    METRICS,
    MetricResult,
    accuracy,
    argmax_iou,
    exact_match,
    index_agreement,
)

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
        "exact_match": 0.999,
    },
    "fp16": {
        "max_rel_error": 5e-2,
        "snr_db": 30.0,
        "cosine_similarity": 0.999,
        "top1_agreement": 0.99,
        "top5_agreement": 0.99,
        "exact_match": 0.99,
    },
}
# fp16 weight rounding (relative error <= 2^-11 per weight) costs ~70 dB per layer; batch-norm folding and
# depth take well-trained CNNs to 34-59 dB (measured). Storage or compute alone may use the whole
# end-to-end fp16 budget: either failing alone already fails the model.
TOLERANCES["storage"] = dict(TOLERANCES["fp16"])
TOLERANCES["compute"] = dict(TOLERANCES["fp16"])
# The metric a verdict quotes, in order of preference, when several fail (or the first that applies).
HEADLINE_METRICS = (
    "snr_db", "cosine_similarity", "max_rel_error", "top1_agreement", "top5_agreement", "exact_match",
)  # fmt: skip
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

    def failing(self) -> list[tuple[str, str, MetricResult]]:
        """(output, metric name, result) of every metric outside its bound, headline metrics first."""
        order = {m: i for i, m in enumerate(HEADLINE_METRICS)}
        found = [(o.output, k, m) for o in self.outputs for k, m in o.metrics.items() if not m.passed]
        return sorted(found, key=lambda f: order.get(f[1], len(order)))

    def headline(self) -> str:
        """How far off, in one phrase: the most telling failing metric (or the worst SNR when all pass)."""
        failing = self.failing()
        if failing:
            output, name, m = failing[0]
            where = f" on {output}" if len(self.outputs) > 1 else ""
            bound = (
                "" if m.threshold is None else f" ({'>=' if m.higher_is_better else '<='} {m.threshold:g})"
            )
            return f"{describe_metric(name, m.value)}{_per_position(m)}{bound}{where}"
        if self.accuracy is not None and not self.accuracy.passed:
            return f"accuracy {describe_metric('accuracy', self.accuracy.value)} (>= {self.accuracy.threshold:.4g})"
        for name in HEADLINE_METRICS:
            value = self.worst(name)
            if value is not None:
                return describe_metric(name, value)
        return "no comparable output"


def _per_position(m: MetricResult) -> str:
    """`` per position (class axis 1)`` for a dense output's top-k: the value counts pixels, not samples."""
    if "positions_per_sample" not in m.details:
        return ""
    return f" per position (class axis {m.details['class_axis']})"


def describe_metric(name: str, value: float | None) -> str:
    """``SNR 34.2 dB``, ``cosine 0.999912``... with enough digits to see how close it is to a bound."""
    if value is None:
        return f"{name} n/a"
    if math.isnan(value):  # in words, as the finite values are
        words = {
            "snr_db": "SNR NaN dB",
            "cosine_similarity": "cosine NaN",
            "max_rel_error": "max relative error NaN",
        }
        return words.get(name, f"{name.replace('_', ' ')} NaN")
    if name == "snr_db":
        return f"SNR {value:.1f} dB" if math.isfinite(value) else f"SNR {'inf' if value > 0 else '-inf'} dB"
    if name == "cosine_similarity":
        return f"cosine {value:.6f}"
    if name == "max_rel_error":
        return f"max relative error {value:.3g}"
    if name in ("top1_agreement", "top5_agreement", "accuracy", "argmax_iou", "exact_match"):
        return f"{name.replace('_', ' ')} {value:.4f}"
    return f"{name} {value:.4g}"


def has_class_axis(output: str, reference: np.ndarray) -> bool:
    """Whether ``output`` holds class scores by its name and shape alone (no program to read the head from).

    Names that say what the output is decide (``logits`` yes; ``last_hidden_state``, ``pooler_output``,
    ``pred_boxes`` no); a name that says nothing (``var_12``, ``output``) keeps the metric for float outputs of
    rank 2 with a last axis of more than one element. See :func:`devicefit.compare.class_axis.decide`.
    """
    return class_axis.decide(output, reference).axis is not None


def compare_arrays(
    reference: np.ndarray,
    candidate: np.ndarray,
    tolerances: dict[str, float],
    classy: bool | None = None,
    axis: int | None = None,
) -> dict[str, MetricResult]:
    """Every applicable metric of :data:`METRICS` for one pair of arrays.

    ``classy``: whether top-k agreement applies (default: any float array with a last axis > 1; see
    :func:`devicefit.compare.class_axis.decide` for the rule :func:`compare` uses). ``axis``: the class axis
    (default the last); a dense output (classes not on the last axis, or rank > 2) also gets ``argmax_iou``.
    """
    ref = np.asarray(reference)
    if classy is None:
        classy = axis is not None or (ref.dtype.kind == "f" and ref.ndim >= 1 and ref.shape[-1] > 1)
    class_ax = -1 if axis is None else axis
    out: dict[str, MetricResult] = {}
    for name, fn in METRICS.items():
        if name.startswith("top") and not classy:
            continue
        kw = {"axis": class_ax} if name.startswith("top") else {}
        result = fn(reference, candidate, tol=tolerances.get(name), **kw)
        # NOTE: a metric that does not apply (top-5 of 3 classes, SNR of an all-zero reference) is left out:
        # the report reads a present-but-null value as NaN
        if result.value is not None:
            out[name] = result
    if classy and ref.ndim > 2:
        out["argmax_iou"] = argmax_iou(reference, candidate, class_ax, tol=tolerances.get("argmax_iou"))
    return out


# |x| at or above this is an infinity: coremltools stores an infinite constant (masked_fill(mask, -inf)) as the
# float32 -3.4e38, and Hugging Face masks with torch.finfo(float32).min, which fp16 reads as -inf
_SATURATED = 3e38


def _nonfinite_codes(a: np.ndarray) -> np.ndarray:
    """0 finite, 1 NaN, 2 +inf (or saturated), 3 -inf, per element."""
    codes = np.where(np.isnan(a), 1, 0)
    codes = np.where(a >= _SATURATED, 2, codes)
    return np.where(a <= -_SATURATED, 3, codes)


def _same_nonfinite(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray | None:
    """Where PyTorch itself gives NaN / inf (None: nowhere, or not a float pair of one shape).

    NOTE: a log of a negative score, or attention logits masked with -inf, are NaN / inf in PyTorch itself; a
    converted model giving the same there is exact, and NaN - NaN made every metric NaN (a conversion FAIL).
    """
    if reference.dtype.kind != "f" or candidate.dtype.kind != "f" or reference.shape != candidate.shape:
        return None
    special = _nonfinite_codes(reference) != 0
    return special if special.any() else None


def _compare_around_nonfinite(
    reference: np.ndarray, candidate: np.ndarray, special: np.ndarray, tol: dict[str, float], axis: int | None
) -> dict[str, MetricResult]:
    """The metrics of :func:`compare_arrays` on the finite values, and the NaN / inf pattern by exact match.

    The pattern (finite, NaN, +inf, -inf per element; a float32 extreme counts as the infinity of its sign) is
    judged like a mask output, by ``exact_match`` with its bound: a score at a mask's threshold may flip
    under fp16 weight rounding. The error metrics read every position PyTorch gives NaN / inf, or the candidate
    +-inf, as 0 on both sides; a candidate NaN where PyTorch is finite stays in them and fails them. Top-k
    reads NaN and -inf below every finite score and +inf above, so masked classes still rank last (first).
    """
    ref_codes, cand_codes = _nonfinite_codes(reference), _nonfinite_codes(candidate)
    # an fp16 package holds an infinite constant as the fp16-safe +-32752 (convert/fp16_constants.py), which an
    # additive mask then offsets by the score (scores + mask * finfo.min): past half of it, the candidate gives
    # the infinity PyTorch has there
    from devicefit.convert.fp16_constants import SAFE_SENTINEL

    cand_codes = np.where((ref_codes == 2) & (candidate >= SAFE_SENTINEL / 2), 2, cand_codes)
    cand_codes = np.where((ref_codes == 3) & (candidate <= -SAFE_SENTINEL / 2), 3, cand_codes)
    pattern = exact_match(ref_codes, cand_codes, tol.get("exact_match"))
    pattern.details["of"] = "the positions PyTorch gives NaN / inf"
    left_out = special | (cand_codes >= 2)
    metrics = compare_arrays(
        np.where(left_out, 0.0, reference), np.where(left_out, 0.0, candidate), tol, axis is not None, axis
    )
    ranked = [k for k in metrics if k.startswith("top") or k == "argmax_iou"]
    if ranked:
        finite = reference[~left_out]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        filler = np.where(ref_codes == 2, high + (high - low) + 1.0, low - (high - low) - 1.0)
        filled = np.where(left_out, filler, reference), np.where(left_out, filler, candidate)
        by_rank = compare_arrays(*filled, tol, True, axis)
        metrics.update({k: by_rank[k] for k in ranked if k in by_rank})
    metrics["exact_match"] = pattern
    return metrics


def stack_samples(per_sample: list[dict[str, Any]], names: list[str]) -> dict[str, np.ndarray]:
    """Concatenate each output over samples along axis 0 (a batch axis is added to 0-d outputs)."""
    stacked: dict[str, np.ndarray] = {}
    for name in names:
        parts = [np.asarray(s[name]) for s in per_sample]
        parts = [p.reshape(1) if p.ndim == 0 else p for p in parts]
        stacked[name] = np.concatenate(parts, axis=0) if parts else np.zeros(0)
    return stacked


def _user_axis(
    user: Mapping[str, int | None] | None, ref_name: str, cand_name: str
) -> Mapping[str, int | None] | None:
    """The ``--class-axis`` entry for a pair, keyed by the reference's name (either name may be given)."""
    if not user:
        return None
    for name in (ref_name, cand_name):
        if name in user:
            return {ref_name: user[name]}
    return None


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
    class_axes: Mapping[str, class_axis.ClassAxis] | None = None,
    user_class_axes: Mapping[str, int | None] | None = None,
    index_outputs: Mapping[str, str | None] | None = None,
    keep: Mapping[str, np.ndarray] | None = None,
    discrete: Collection[str] = (),
) -> Comparison:
    """Compare stacked outputs (see :func:`stack_samples`) and, with labels, task accuracy.

    Args:
        name: comparison name (``"fp32"`` / ``"fp16"``); picks the default tolerances.
        reference: output name -> stacked reference array.
        candidate: output name -> stacked candidate array (names matched by :func:`match_outputs`).
        reference_label: what the reference is, for the report.
        labels: integer class labels, one per sample row of the first output.
        tolerances: override :data:`TOLERANCES` entries.
        class_axes: candidate output name -> the class axis its head op implies
            (:func:`devicefit.compare.class_axis.head_axes` of the program).
        user_class_axes: ``--class-axis`` overrides, output name -> axis or None (either name of a pair).
        index_outputs: candidate output name -> the output with the scores it selects (or None): outputs
            holding labels / indices (:func:`devicefit.compare.class_axis.index_outputs`), judged by
            agreement (near-tie swaps accepted when the scores are known), not by error magnitudes.
        keep: output name (either name of a pair) -> bool array broadcastable to the stacked output, True at
            the positions to compare (:meth:`devicefit.compare.padding.Padding.keeps`: padding left out).
        discrete: output names (either name of a pair) holding integers or booleans, judged by
            :func:`~devicefit.compare.metrics.exact_match`; a reference of integer or boolean dtype is one
            anyway (a Core ML program returns a mask as float 0/1: the caller names it).
    """
    tol = {**TOLERANCES.get(name, {}), **(tolerances or {})}
    pairs = match_outputs(list(reference), list(candidate))
    outputs = []
    notes: list[str] = []
    axes: dict[str, class_axis.ClassAxis] = {}
    ref_of = {c: r for r, c in pairs}
    for ref_name, cand_name in pairs:
        ref = reference[ref_name]
        if index_outputs is not None and cand_name in index_outputs:
            values = index_outputs[cand_name]
            known = values is not None and values in candidate and ref_of.get(values) in reference
            got = np.asarray(candidate[cand_name])
            if got.shape != ref.shape and got.size == ref.size:
                got = got.reshape(ref.shape)
            agreement = index_agreement(
                ref,
                got,
                tol.get("top1_agreement"),
                reference[ref_of[values]] if known and values is not None else None,
                candidate[values] if known and values is not None else None,
            )
            agreement.details["class_axis_evidence"] = "index output (argmax / argsort / topk indices)"
            exact = METRICS["max_abs_error"](ref, got)
            outputs.append(OutputComparison(cand_name, {"max_abs_error": exact, "top1_agreement": agreement}))
            continue
        if ref.dtype.kind in "biu" or ref_name in discrete or cand_name in discrete:
            got = np.asarray(candidate[cand_name])
            if got.shape != ref.shape and got.size == ref.size:
                got = got.reshape(ref.shape)
            matched = {
                "max_abs_error": METRICS["max_abs_error"](ref, got),
                "exact_match": exact_match(ref, got, tol.get("exact_match")),
            }
            outputs.append(OutputComparison(cand_name, matched))
            continue
        cand = (
            candidate[cand_name].astype(np.float64)
            if candidate[cand_name].dtype.kind == "f"
            else candidate[cand_name]
        )
        if ref.shape != cand.shape and ref.size == cand.size:
            cand = cand.reshape(ref.shape)
        # the labelled output holds class scores whatever its name (accuracy is read off it)
        labelled = labels is not None and (ref_name, cand_name) == pairs[0]
        user = _user_axis(user_class_axes, ref_name, cand_name)
        head = (class_axes or {}).get(cand_name)
        decided = class_axis.decide(ref_name, ref, head, user, labelled)
        axes[cand_name] = decided
        axis = decided.axis
        sel = padding.kept(keep, (ref_name, cand_name), ref.shape)
        picked = None if sel is None else padding.select(ref, cand, sel, axis)
        if picked is not None:
            ref, cand, axis = picked
        special = _same_nonfinite(ref, cand)
        if special is None:
            metrics = compare_arrays(ref, cand, tol, axis is not None, axis)
        else:
            metrics = _compare_around_nonfinite(ref, cand, special, tol, axis)
            notes.append(
                f"{cand_name}: {int(special.sum())} value(s) NaN / inf (or +-3.4e38) in PyTorch itself (a mask, a log "
                "of 0): "
                "compared by where they fall (exact match), the finite values by error"
            )
        for m in metrics.values():
            if m.name.startswith("top") or m.name == "argmax_iou":
                m.details["class_axis_evidence"] = decided.evidence
        outputs.append(OutputComparison(cand_name, metrics))
    result = Comparison(name, reference_label, outputs, samples=len(next(iter(reference.values()), [])))
    result.notes.extend(notes)
    if labels is not None and pairs:
        ref_name, cand_name = pairs[0]
        ax = axes[cand_name].axis
        ax = -1 if ax is None else ax
        ref_acc = accuracy(labels, reference[ref_name], axis=ax).value
        floor = None if ref_acc is None else ref_acc - ACCURACY_DROP
        result.accuracy = accuracy(labels, candidate[cand_name], tol=floor, axis=ax)
        result.reference_accuracy = ref_acc
    return result
