"""Search: the smallest mixed-precision model that meets an accuracy budget.

1. The fp32 model's outputs are the reference; the base is the model in fp16 (repaired with a few fp32
   ops when plain fp16 misses the budget).
2. Each weight is compressed at each choice of the ladder (e.g. 4/6/8-bit palettization) once, by
   coremltools; sensitivity = the metric and output noise with only that weight compressed.
3. Starting from every weight at the smallest choice, upgrades (a weight one step up the ladder) are ordered
   by noise removed per byte added: a path from the smallest model to the fp16 base. A k-ary search over
   that path (k = parallel workers) finds the first point meeting the budget; then single-weight
   downgrades that still pass are taken greedily.
4. The plan is built as a real package and re-measured on it.

Generalisation: the samples are split (seeded) into calibration and held-out parts. Steps 1-3 see only the
calibration part, and a candidate passes only with a safety margin of ``MARGIN_Z`` standard errors of its
per-sample metric to spare. The built plan is then measured on the held-out samples, which it must meet too.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from devicefit.compress.batching import PER_SAMPLE, Batching, choose_batching, run_samples
from devicefit.compress.budget import Budget, measure, meets, parse_budget
from devicefit.compress.configs import Config, Fp16Config, PalettizeConfig, QuantizeConfig
from devicefit.compress.evaluate import EvalSpec, Measure, make_executor
from devicefit.compress.holdout import StageTimer, pick_labels, split_samples
from devicefit.compress.path import assignment_at, refine, upgrade_path
from devicefit.compress.repair import Fp16Repair, repair_fp16
from devicefit.compress.sensitivity import LayerSensitivity, Sensitivity, measure_sensitivity
from devicefit.compress.verbs import apply_plan, as_mlmodel, fp16, quiet, save, target_of
from devicefit.compress.weights import find_weights, input_bytes, plan_yaml, stored_bytes, weight_origins
from devicefit.errors import InputError

SCHEMES = ("palettize", "quantize")
Progress = Callable[[str, int, int], None]


@dataclass
class SearchOptions:
    """How to search.

    Attributes:
        budget: e.g. ``"accuracy>=-0.5%"``, ``"cosine>=0.999"``, ``"psnr>=40"``.
        scheme: ``"palettize"`` (k-means LUTs, ladder ``bits``) or ``"quantize"`` (int4 per-block on iOS18,
            int8 per-channel).
        bits: palettization bit widths to mix (fp16 is always the top of the ladder).
        min_elements: weights smaller than this stay fp16.
        workers: parallel evaluations (1: in this process).
        ray_address: evaluate on a Ray cluster (``"local"``: start one here).
        max_evaluations: cap on candidate evaluations after sensitivity.
        holdout: fraction of the samples held out of the search to verify the chosen plan on (0: none).
        seed: seed of the calibration / held-out split (same samples + same seed -> the same plan).
        batch: evaluate several samples per interpreter run where the program allows it (probed once, see
            :mod:`devicefit.compress.batching`); False: one run per sample.
        sensitivity_samples: the per-layer sensitivity runs on the first this many calibration samples (None:
            all). It only orders the weights (by output noise, a continuous measure); every candidate of the
            search is then measured on all calibration samples, and the chosen plan on the held-out ones.
    """

    budget: str | Budget
    scheme: str = "palettize"
    bits: tuple[int, ...] = (4, 6, 8)
    min_elements: int = 256
    workers: int = 1
    ray_address: str | None = None
    max_evaluations: int = 60
    holdout: float = 0.25
    seed: int = 0
    batch: bool = True
    # NOTE: the sensitivity stage evaluates every weight x every ladder step: on a DistilBERT package (38
    # weights x 3 steps) it took 182 s of a 244 s search at 18 calibration samples, so ~25 min at the default
    # 150; ranking the weights needs far fewer samples than judging the budget does
    sensitivity_samples: int | None = 32

    def validate(self) -> Budget:
        budget = self.budget if isinstance(self.budget, Budget) else parse_budget(self.budget)
        if self.scheme not in SCHEMES:
            raise InputError(f"scheme must be one of {', '.join(SCHEMES)}; got {self.scheme!r}")
        bad = [b for b in self.bits if b not in (1, 2, 3, 4, 6, 8)]
        if not self.bits or bad:
            raise InputError(f"bits must be some of 1, 2, 3, 4, 6, 8; got {list(self.bits)}")
        for field_name, flag in (
            ("workers", "--workers"),
            ("max_evaluations", None),
            ("min_elements", "--min-elements"),
        ):
            value = getattr(self, field_name)
            if value < 1:
                named = f"{flag} ({field_name})" if flag else field_name
                raise InputError(f"{named} must be a positive integer; got {value}")
        if self.sensitivity_samples is not None and self.sensitivity_samples < 1:
            raise InputError(f"sensitivity_samples must be positive or None; got {self.sensitivity_samples}")
        if not 0.0 <= self.holdout < 1.0:
            raise InputError(f"holdout must be a fraction in [0, 1); got {self.holdout}")
        if not isinstance(self.seed, int) or self.seed < 0:  # numpy's generators take no negative seed
            raise InputError(f"seed must be a non-negative integer; got {self.seed!r}")
        return budget


@dataclass
class Candidate:
    """An evaluated assignment (weight -> choice), its stored bytes and its budget metric.

    ``passed``: the metric meets the budget with ``margin`` (the calibration set's uncertainty) to spare.
    """

    assignment: dict[str, str]
    bytes: int
    metric: float
    noise: float
    passed: bool
    margin: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "bytes": self.bytes,
            "metric": self.metric if math.isfinite(self.metric) else None,
            "margin": self.margin,
            "noise": self.noise if math.isfinite(self.noise) else None,
            "passed": self.passed,
            "assignment": self.assignment,
        }


@dataclass
class SearchResult:
    """What the search found. ``met`` says whether any candidate met the budget; ``chosen`` is the smallest
    that did, else the best found (highest metric)."""

    budget: Budget
    threshold: float
    met: bool
    chosen: Candidate
    original_metric: float
    original_bytes: int
    base_bytes: int
    sensitivity: Sensitivity
    candidates: list[Candidate]
    plan: dict[str, Config]
    choices: dict[str, Config]
    repair: Fp16Repair | None
    mlmodel: Any = field(default=None, repr=False)
    verified_metric: float | None = None
    # the built plan on the held-out samples (None without a held-out part)
    heldout_metric: float | None = None
    calibration_samples: int = 0
    heldout_samples: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    batching: Batching = PER_SAMPLE

    @property
    def heldout_met(self) -> bool | None:
        """The chosen plan meets the budget on the held-out samples (None without any)."""
        return None if self.heldout_metric is None else meets(self.heldout_metric, self.threshold)

    @property
    def verified_met(self) -> bool | None:
        """The built plan, re-measured on the calibration samples, meets the budget (None when not measured)."""
        return None if self.verified_metric is None else meets(self.verified_metric, self.threshold)

    @property
    def generalizes(self) -> bool:
        """The verdict: met on the calibration samples (with margin), by the built plan re-measured, and, when
        there are any, on the held-out ones. The CLI's exit code, the tables, the JSON and the page all say it."""
        return self.met and self.verified_met is not False and self.heldout_met is not False

    @property
    def front(self) -> list[Candidate]:
        """The Pareto front: no other candidate is both smaller and better."""
        best = -math.inf
        out = []
        for c in sorted(self.candidates, key=lambda c: (c.bytes, -c.metric)):
            if c.metric > best:
                out.append(c)
                best = c.metric
        return out

    def plan_yaml(self) -> str:
        return plan_yaml(self.plan)

    def save(self, path: str | Path, force: bool = False) -> Path:
        return save(self.mlmodel, path, force=force)

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget": self.budget.text,
            "metric": self.budget.metric,
            "threshold": self.threshold,
            "verdict": "pass" if self.generalizes else "fail",
            "met": self.met,
            "verified_met": self.verified_met,
            "original_metric": self.original_metric,
            "original_bytes": self.original_bytes,
            "fp16_bytes": self.base_bytes,
            "chosen": self.chosen.to_dict(),
            "verified_metric": self.verified_metric,
            "margin": self.chosen.margin,
            "heldout_metric": self.heldout_metric,
            "heldout_met": self.heldout_met,
            "calibration_samples": self.calibration_samples,
            "heldout_samples": self.heldout_samples,
            "timings": dict(self.timings),
            "batching": self.batching.to_dict(),
            "compression_ratio_vs_fp16": self.base_bytes / max(self.chosen.bytes, 1),
            "plan": {w: self.choices[c].label for w, c in self.chosen.assignment.items()},
            "pareto_front": [c.to_dict() for c in self.front],
            "candidates": len(self.candidates),
            "sensitivity": self.sensitivity.to_dict(),
            "fp16_repair": self.repair.to_dict() if self.repair else None,
        }


def ladder(options: SearchOptions, target: str) -> dict[str, Config]:
    """Choice label -> config, smallest first, ending with ``"fp16"``."""
    choices: dict[str, Config] = {}
    if options.scheme == "palettize":
        for b in sorted(set(options.bits)):
            choices[f"pal{b}"] = PalettizeConfig(nbits=b, mode="fast_kmeans", weight_threshold=0)
    else:
        if target == "iOS18":
            choices["int4"] = QuantizeConfig("int4", "per_block", 32, "linear_symmetric", 0)
        choices["int8"] = QuantizeConfig("int8", "per_channel", 32, "linear_symmetric", 0)
    choices["fp16"] = Fp16Config()
    return choices


def search(
    model: Any,
    feeds: Sequence[dict[str, np.ndarray]],
    options: SearchOptions,
    labels: np.ndarray | None = None,
    progress: Progress | None = None,
) -> SearchResult:
    """Find the smallest compression plan for ``model`` meeting ``options.budget`` on ``feeds``.

    Args:
        model: the original ML Program (``MLModel`` or path), ideally fp32: it is the reference.
        feeds: calibration samples (one input dict each).
        options: budget, ladder, parallelism.
        labels: integer labels (needed for an accuracy budget).
        progress: called as ``progress(stage, done, total)``.

    Returns:
        A SearchResult whose ``mlmodel`` is the built chosen package (nothing is written to disk).
    """
    from devicefit import interp

    budget = options.validate()
    if budget.needs_labels and labels is None:
        raise InputError(
            "an accuracy budget needs labelled data; give --data with labels, or a cosine / psnr budget"
        )
    if not feeds:
        raise InputError("no calibration samples; give --data or --samples > 0")
    stages = StageTimer(progress)
    report, timings = stages.report, stages.timings
    all_feeds, all_labels = list(feeds), labels
    cal_idx, held_idx = split_samples(len(all_feeds), options.holdout, options.seed)
    feeds = [all_feeds[i] for i in cal_idx]
    labels = pick_labels(all_labels, len(all_feeds), cal_idx)
    original = as_mlmodel(model)
    p32 = interp.load(original)
    first = p32.outputs[0].name
    report("reference", 0, 1)
    reference = run_samples(p32, feeds, "fp32")
    original_metric = measure(budget.metric, reference, reference, labels, first)
    threshold = budget.threshold(original_metric if budget.relative else None)
    choices = ladder(options, target_of(original))
    order = list(choices)
    report("fp16", 0, 1)
    repair: Fp16Repair | None = None
    base = fp16(original)
    fp16_metric = measure(
        budget.metric, run_samples(interp.load(base), feeds, "fp16"), reference, labels, first
    )
    if not meets(fp16_metric, threshold):
        report("fp16 repair", 0, 1)
        repair = repair_fp16(original, feeds, budget, labels, reference)
        if repair.passed:
            base = repair.mlmodel
    tmp = Path(tempfile.mkdtemp(prefix="devicefit-compress-"))
    executor = None
    try:
        base_path = tmp / "base.mlpackage"
        with quiet():
            base.save(str(base_path))
        batching = PER_SAMPLE
        if options.batch:
            report("batching probe", 0, 1)
            batching = choose_batching(interp.load(base), feeds)
        weights = find_weights(base, options.min_elements)
        if not weights:
            raise InputError(
                f"no weight has >= {options.min_elements} elements; lower min_elements (--min-elements on the "
                "command line)"
            )
        base_sizes = input_bytes(base)
        base_bytes = stored_bytes(base)
        origins = weight_origins(original, base, weights)
        layers = [LayerSensitivity(w.name, w.layer, w.numel, origin=origins.get(w.name)) for w in weights]
        consumers = {w.name: [(op, param) for op, _, param in w.consumers] for w in weights}
        table: dict[str, dict[str, np.ndarray]] = {w.name: {} for w in weights}
        for i, label in enumerate(order[:-1]):
            report("compress", i, len(order) - 1)
            compressed = apply_plan(base, {w.name: choices[label] for w in weights})
            sizes = input_bytes(compressed)
            steps = {s.name: s for s in interp.load(compressed).plan.block.steps}
            for w, layer in zip(weights, layers):
                op, _, param = w.consumers[0]
                table[w.name][label] = steps[op].consts[param].numpy().copy()
                layer.bytes[label] = sizes[(op, param)]
        for w, layer in zip(weights, layers):
            op, _, param = w.consumers[0]
            layer.bytes["fp16"] = base_sizes[(op, param)]
        spec = EvalSpec(
            str(base_path), consumers, table, list(feeds), reference, labels, budget.metric, batching
        )
        # NOTE: each stage is announced before its work: the timer charges everything up to the next
        # announcement to the current stage (workers starting, the base evaluation: "sensitivity").
        report("sensitivity", 0, len(layers) * (len(order) - 1))
        executor = make_executor(spec, options.workers, options.ray_address)
        base_eval = executor.evaluate([{}])[0]
        base_metric, base_margin = base_eval.metric, base_eval.margin
        subset = options.sensitivity_samples
        if subset is not None and subset >= len(feeds):
            subset = None
        sensitivity_base = base_metric if subset is None else executor.evaluate([{}], subset)[0].metric
        sensitivity = measure_sensitivity(
            executor, layers, order, budget.metric, sensitivity_base, report, samples=subset
        )
        fp16_sum = sum(s.bytes["fp16"] for s in layers)

        def size(assign: dict[str, str]) -> int:
            by = {s.weight: s for s in layers}
            return base_bytes - fp16_sum + sum(by[w].bytes[c] for w, c in assign.items())

        seen: dict[tuple, Candidate] = {}

        def run(assigns: list[dict[str, str]]) -> list[Candidate]:
            todo = [a for a in assigns if tuple(sorted(a.items())) not in seen]
            for a, m in zip(todo, executor.evaluate(todo) if todo else []):
                seen[tuple(sorted(a.items()))] = _candidate(a, size(a), m, threshold)
            report("search", len(seen), options.max_evaluations)
            return [seen[tuple(sorted(a.items()))] for a in assigns]

        report("search", 0, options.max_evaluations)
        path = upgrade_path(layers, order)
        top = {s.weight: "fp16" for s in layers}
        base_measure = Measure(base_metric, 0.0, base_margin)
        seen[tuple(sorted(top.items()))] = _candidate(top, size(top), base_measure, threshold)
        lo, hi = -1, len(path)  # path[:hi] passes (the base, if anything does); path[:lo] fails
        if not seen[tuple(sorted(top.items()))].passed:
            lo = len(path)
        k = max(1, options.workers)
        while hi - lo > 1 and len(seen) < options.max_evaluations:
            points = sorted({lo + max(1, (hi - lo) * (j + 1) // (k + 1)) for j in range(k)} - {hi})
            results = run([assignment_at(layers, order, path, n) for n in points])
            passed_at = [n for n, c in zip(points, results) if c.passed]
            hi = min(passed_at) if passed_at else hi
            lo = max([n for n, c in zip(points, results) if not c.passed and n < hi], default=lo)
        if hi <= len(path) and seen.get(tuple(sorted(assignment_at(layers, order, path, hi).items())), None):
            current = seen[tuple(sorted(assignment_at(layers, order, path, hi).items()))]
            current = refine(current, order, run, options.max_evaluations, seen)
        candidates = list(seen.values())
        passing = [c for c in candidates if c.passed]
        met = bool(passing)
        chosen = (
            min(passing, key=lambda c: (c.bytes, -c.metric))
            if met
            else max(candidates, key=lambda c: c.metric)
        )
        plan = {w: choices[c] for w, c in chosen.assignment.items()}
        report("build", 0, 1)
        built = apply_plan(base, plan)
        built_program = interp.load(built)
        built_out = run_samples(built_program, feeds, "fp16", batching)
        verified = measure(budget.metric, built_out, reference, labels, first)
        heldout_metric = None
        if held_idx:
            report("held-out", 0, 1)
            held_feeds = [all_feeds[i] for i in held_idx]
            held_labels = pick_labels(all_labels, len(all_feeds), held_idx)
            held_ref = run_samples(p32, held_feeds, "fp32")
            heldout_metric = measure(
                budget.metric,
                run_samples(built_program, held_feeds, "fp16", batching),
                held_ref,
                held_labels,
                first,
            )
        report("done", 1, 1)
        return SearchResult(
            budget,
            threshold,
            met,
            chosen,
            original_metric,
            stored_bytes(original),
            base_bytes,
            sensitivity,
            candidates,
            plan,
            choices,
            repair,
            built,
            verified,
            heldout_metric,
            len(cal_idx),
            len(held_idx),
            timings,
            batching,
        )
    finally:
        if executor is not None:
            executor.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _candidate(assign: dict[str, str], nbytes: int, m: Measure, threshold: float) -> Candidate:
    return Candidate(dict(assign), nbytes, m.metric, m.noise, meets(m.metric - m.margin, threshold), m.margin)
