"""Stage 4: compare the runs (PyTorch, the program in fp32 and in fp16) with the tolerances of
:mod:`devicefit.compare.validate`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from devicefit.check.validate import Runs


@dataclass
class Numerics:
    """The comparisons of stage 4.

    Attributes:
        fp32: the program computing in fp32 vs PyTorch (None without a PyTorch reference).
        fp16: the program emulating fp16 vs PyTorch (vs the fp32 run without a reference).
        divergence: per-op fp16 vs fp32 (:class:`devicefit.compare.divergence.Divergence`).
        trained: does the model look trained.
        warnings: findings for the terminal.
    """

    fp32: Any = None
    fp16: Any = None
    divergence: Any = None
    trained: Any = None
    warnings: list[str] = field(default_factory=list)


def compare_runs(program: Any, runs: Runs, labels: Any) -> Numerics:
    """Stage 4: every comparison the verdicts read."""
    from devicefit.compare.divergence import looks_untrained
    from devicefit.compare.validate import compare, stack_samples

    out = Numerics(divergence=runs.divergence)
    out_names = [o.name for o in program.outputs]
    fp32 = stack_samples(runs.fp32, out_names)
    fp16 = stack_samples(runs.fp16, out_names)
    if runs.torch:
        torch_out = stack_samples(runs.torch, list(runs.torch[0]))
        out.fp32 = compare("fp32", torch_out, fp32, "pytorch", labels)
        out.fp16 = compare("fp16", torch_out, fp16, "pytorch", labels)
        out.trained = looks_untrained(torch_out)
    else:
        out.warnings.append("no PyTorch reference (model given as Core ML): fp16 is compared with fp32")
        out.fp16 = compare("fp16", fp32, fp16, "interp-fp32", labels)
        out.trained = looks_untrained(fp32)
    for comp in (out.fp32, out.fp16):
        if comp is not None:
            comp.samples = len(runs.fp32)
    if out.trained.looks_untrained:
        out.warnings.append(
            f"the model looks untrained ({out.trained.reason}); random weights exaggerate numeric error"
        )
    return out
