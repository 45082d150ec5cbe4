"""Stage 4: compare the runs and answer three separate questions (see docs/metrics.md):

* *conversion fidelity*: an fp32 conversion run in fp32 vs PyTorch (tight bounds);
* *weight storage loss*: the shipped package's weights (fp16 / compressed), computed in fp32, vs PyTorch;
* *compute precision loss*: the shipped package emulating fp16 vs the same package in fp32.

Each has its own bounds (:data:`devicefit.compare.validate.TOLERANCES`), so a verdict can say which moved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from devicefit.check.validate import Runs
from devicefit.errors import InputError

FIDELITY, STORAGE, COMPUTE = "conversion_fidelity", "weight_storage", "compute_precision"


@dataclass
class Question:
    """One of the three numeric questions.

    Attributes:
        name: ``conversion_fidelity``, ``weight_storage`` or ``compute_precision``.
        comparison: the :class:`devicefit.compare.validate.Comparison` that answers it (None: not answered).
        measured_on: what was compared with what, for the report.
    """

    name: str
    comparison: Any
    measured_on: str

    @property
    def passed(self) -> bool | None:
        return None if self.comparison is None else self.comparison.passed


@dataclass
class Numerics:
    """The comparisons of stage 4.

    Attributes:
        fp32: the shipped package computing in fp32 vs PyTorch (None without a PyTorch reference). With
            fp32 weights this is conversion fidelity (tight bounds), else weight storage loss.
        fp16: the shipped package emulating fp16 vs PyTorch (vs its fp32 run without a reference).
        questions: the three questions, by name (absent when they cannot be asked, e.g. no reference).
        divergence: per-op fp16 vs fp32 (:class:`devicefit.compare.divergence.Divergence`).
        trained: does the model look trained.
        warnings: findings for the terminal.
        padding: the data's padding positions left out of every comparison (None: nothing left out).
    """

    fp32: Any = None
    fp16: Any = None
    questions: dict[str, Question] = field(default_factory=dict)
    divergence: Any = None
    trained: Any = None
    warnings: list[str] = field(default_factory=list)
    padding: Any = None


def discrete_outputs(runs: Runs, out_names: list[str]) -> set[str]:
    """Program outputs holding integers or booleans: PyTorch returns them so, or the program types them so.

    NOTE: Core ML has no bool outputs: a mask comes back as float 0/1, and the fp16-vs-fp32 comparison alone
    would judge it by relative error (one flipped bit: max relative error 1, a FAIL).
    """
    from devicefit.compare.validate import match_outputs

    found = {n for n in out_names if runs.fp32 and np.asarray(runs.fp32[0][n]).dtype.kind in "biu"}
    if runs.torch:
        for ref, name in match_outputs(list(runs.torch[0]), out_names):
            if np.asarray(runs.torch[0][ref]).dtype.kind in "biu":
                found.add(name)
    return found


def compare_runs(
    program: Any,
    runs: Runs,
    labels: Any,
    weights_fp32: bool,
    fp32_conversion: Callable[[], list[dict[str, Any]]] | None = None,
    user_class_axes: dict[str, int | None] | None = None,
) -> Numerics:
    """Stage 4: every comparison the verdicts read.

    Args:
        program: the shipped program.
        runs: the runs of stage 3.
        labels: dataset labels (task accuracy), or None.
        weights_fp32: the package stores fp32 weights (its fp32 run is then the fidelity question).
        fp32_conversion: per-sample outputs of an fp32 conversion run in fp32; called only when the
            package stores reduced-precision weights and its fp32 run is outside the fidelity bounds.
        user_class_axes: ``--class-axis`` overrides (output name -> class axis, None: not class scores).
    """
    from functools import partial

    from devicefit.compare.class_axis import head_axes, index_outputs
    from devicefit.compare.divergence import looks_untrained
    from devicefit.compare.validate import TOLERANCES, match_outputs, stack_samples
    from devicefit.compare.validate import compare as compare_any

    # which axis holds the classes of each output, read once off the program's head ops (docs/metrics.md)
    heads = head_axes(program)
    # padded positions hold undefined values: each comparison keeps the token positions only
    keep = {}
    if runs.padding is not None:
        keep = {**runs.padding.keeps(runs.fp32, record=not runs.torch), **runs.padding.keeps(runs.torch)}
    compare = partial(
        compare_any,
        class_axes=heads,
        user_class_axes=user_class_axes,
        index_outputs=index_outputs(program),
        keep=keep,
    )
    out = Numerics(divergence=runs.divergence)
    if keep:
        out.padding = runs.padding
        out.warnings.append(runs.padding.describe())
    out_names = [o.name for o in program.outputs]
    known = [*out_names, *(n for n in (runs.torch[0] if runs.torch else {}) if n not in out_names)]
    unknown = [n for n in user_class_axes or {} if n not in known]
    if unknown:
        raise InputError(f"--class-axis names output {unknown[0]!r}, which the model does not have; its outputs: "
                         f"{', '.join(known)}")  # fmt: skip
    fp32 = stack_samples(runs.fp32, out_names)
    fp16 = stack_samples(runs.fp16, out_names)
    compute = compare("compute", fp32, fp16, "interp-fp32", discrete=discrete_outputs(runs, out_names))
    if runs.torch:
        torch_out = stack_samples(runs.torch, list(runs.torch[0]))
        out.fp16 = compare("fp16", torch_out, fp16, "pytorch", labels)
        by_torch_name = {r: heads[c] for r, c in match_outputs(list(torch_out), out_names) if c in heads}
        labelled = next(iter(torch_out), None) if labels is not None else None
        out.trained = looks_untrained(torch_out, by_torch_name, user=user_class_axes, labelled=labelled)
        if weights_fp32:
            out.fp32 = compare("fp32", torch_out, fp32, "pytorch", labels)
            fidelity = Question(FIDELITY, out.fp32, "the package (fp32 weights) run in fp32 vs PyTorch")
        else:
            out.fp32 = compare("fp32", torch_out, fp32, "pytorch", labels, TOLERANCES["storage"])
            storage = "the package's stored weights, computed in fp32, vs PyTorch"
            out.questions[STORAGE] = Question(STORAGE, out.fp32, storage)
            tight = compare("fp32", torch_out, fp32, "pytorch")
            if tight.passed:
                # weight rounding included, the fp32 run already meets the conversion bounds
                fidelity = Question(FIDELITY, tight, "the package run in fp32 vs PyTorch (within the bounds)")
            elif fp32_conversion is not None:
                separate = stack_samples(fp32_conversion(), out_names)
                fidelity = Question(
                    FIDELITY,
                    compare("fp32", torch_out, separate, "pytorch"),
                    "a separate fp32 conversion (fp32 weights and compute) run in fp32 vs PyTorch",
                )
            else:
                fidelity = Question(FIDELITY, None, "no fp32 conversion available")
        out.questions[FIDELITY] = fidelity
    else:
        out.warnings.append("no PyTorch reference (model given as Core ML): fp16 is compared with fp32")
        out.fp16 = compare("fp16", fp32, fp16, "interp-fp32", labels)
        labelled = out_names[0] if labels is not None and out_names else None
        out.trained = looks_untrained(fp32, heads, user=user_class_axes, labelled=labelled)
    out.questions[COMPUTE] = Question(
        COMPUTE, compute, "the package emulating fp16 vs the same package in fp32"
    )
    for comp in (out.fp32, out.fp16, *(q.comparison for q in out.questions.values())):
        if comp is not None:
            comp.samples = len(runs.fp32)
    # what the end-to-end comparison read differently (outputs PyTorch itself gives NaN / inf)
    out.warnings.extend(n for n in (out.fp16.notes if out.fp16 is not None else []) if n not in out.warnings)
    if out.trained.looks_untrained:
        out.warnings.append(
            f"the model looks untrained ({out.trained.reason}); random weights exaggerate numeric error"
        )
    return out
