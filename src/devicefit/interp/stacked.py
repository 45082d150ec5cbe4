"""Internal hooks for compress's batched evaluation: several samples through one run of a Program.

Not public API (the engines and ``Program.run`` keep checking the declared shapes): the caller checks that
the result equals one run per sample (``devicefit.compress.batching``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from devicefit.errors import InputError
from devicefit.interp.run import PRECISIONS, Program, _Runner, _to_numpy


def run_stacked(
    program: Program, inputs: Mapping[str, Any], precision: str = "fp32"
) -> dict[str, np.ndarray]:
    """Internal (compress's batched evaluation): run once on samples concatenated along axis 0.

    Like :meth:`Program.run`, except that each input's axis 0 may have any size (the other axes as declared).
    Whether the program is batch-polymorphic (outputs = the samples' outputs concatenated) is the caller's
    to check; a program converted at batch 1 often hard-codes it (a reshape to ``[1, -1]``).
    """
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return program._execute(program._convert_inputs(inputs, precision, leading_free=True), precision)


def run_vmapped(
    program: Program, samples: Sequence[Mapping[str, Any]], precision: str = "fp32"
) -> dict[str, np.ndarray]:
    """Internal (compress's batched evaluation): run every sample in one pass under ``torch.func.vmap``.

    Each sample is validated against the declared shapes and every kernel sees one sample's shapes (so a
    reshape to a hard-coded batch 1 still works), while torch computes all samples at once. Kernels that read
    tensor values into Python (``.item()``) or draw random numbers raise under vmap.

    Returns:
        output name -> the samples' outputs stacked on a new axis 0 (as ``np.stack`` of :meth:`Program.run`).
    """
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if program.states:
        raise InputError("run_vmapped does not run stateful programs")
    converted = [program._convert_inputs(sample, precision) for sample in samples]
    names = [s.name for s in program.inputs]
    stacked = [torch.stack([c[n] for c in converted]) for n in names]

    def one(*values: torch.Tensor) -> tuple[Any, ...]:
        runner = _Runner(program.plan, precision, False, {})
        return tuple(program._run_main(runner, dict(zip(names, values))))

    # NOTE: no_grad, not inference_mode: functorch's batched tensors are not inference tensors.
    with torch.no_grad():
        outs = torch.func.vmap(one)(*stacked)
    result = {}
    for spec, value in zip(program.outputs, outs):
        arr = _to_numpy(value, spec.dtype, precision)
        result[spec.name] = arr.reshape(len(samples), 1) if spec.kind == "tensor" and arr.ndim == 1 else arr
    return result
