"""Whose fault is an op that raised while running: the package's or the user's (exit 2), or devicefit's (exit 3).

Loading rebuilds every op with coremltools, whose type inference re-derives its output types, and refuses a
package whose declared types disagree (a package edited or corrupted after conversion: ``ModelLoadError``, exit
2). The types the interpreter holds are therefore coremltools' own, and an op that fails at run time is judged
by the values that reached it:

* every input is a computed value matching a fully static declared type: a valid op failed on valid values,
  which is devicefit's bug -> :class:`~devicefit.interp.step.KernelFailedError` (internal error, exit 3);
* an input contradicts its declared static shape or dtype kind: the op that produced it returned a value its
  type does not allow, a devicefit kernel bug (or a coremltools type-inference bug), so it is also
  ``KernelFailedError``, naming that producing op;
* a stored constant tensor among the inputs (weights, gamma / beta...): type inference checks a constant's shape
  only where it decides the output type, so a damaged package can load with a constant its op cannot use
  (found by the damaged-package fuzz: a layer_norm beta of shape [0]); and a declaration with symbolic
  (flexible) dimensions: the run-time shapes of several inputs may disagree with each other in ways no
  declaration says. Neither verdict is honest there -> :class:`OpFailedError` (exit 2) saying both
  possibilities.

An op that could not get the memory it asked for (``MemoryError``, torch's allocator refusing) is neither: the
values decided the size (a shape taken from an input, a long sequence), so it is :class:`OpFailedError` (exit 2)
saying how much it asked for and what to check.

Every message leads with the op's PyTorch origin when the package records it.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from devicefit.errors import first_line
from devicefit.interp.plan import Block, FunctionPlan, Step
from devicefit.interp.step import KernelFailedError, OpFailedError


def _declared(plan: FunctionPlan) -> dict[str, tuple[tuple | None, str | None]]:
    """Value name -> (declared shape, MIL dtype) of every op output and fixed-shape function input."""
    found: dict[str, tuple[tuple | None, str | None]] = {}
    for spec in plan.inputs:
        fixed = spec.shape_range is None and not spec.enumerated_shapes
        found[spec.name] = (tuple(spec.shape) if fixed and spec.shape is not None else None, spec.dtype)

    def walk(block: Block) -> None:
        for step in block.steps:
            for name, shape, dtype in zip(step.outputs, step.ctx.output_shapes, step.ctx.output_dtypes):
                found[name] = (shape, dtype)
            for inner in step.ctx.blocks:
                walk(inner)

    walk(plan.block)
    return found


def _kind(dtype: str | None) -> str | None:
    if dtype is None:
        return None
    if dtype == "bool":
        return "bool"
    return "float" if dtype.startswith(("fp", "bf")) else "int"


def _value_kind(value: torch.Tensor) -> str:
    if value.dtype == torch.bool:
        return "bool"
    return "float" if value.dtype.is_floating_point else "int"


def _where(step: Step, spec: Any) -> str:
    """``module (Type) at file:line (mil_name)`` when the package records provenance, else the op and its name."""
    name = step.outputs[0] if step.outputs else step.name
    label = f"op {step.op_type!r} ({name})"
    if spec is None:
        return label
    try:
        from devicefit.convert.provenance import load_from_package

        prov = load_from_package(spec)
        origin = prov.find(*step.outputs, step.name) if prov is not None else None
    except Exception:  # NOTE: naming is a convenience: never let it hide the failure itself
        origin = None
    return f"{origin.label()}: {label}" if origin is not None else label


def _fmt(shape: Any) -> str:
    return "x".join("?" if d is None else str(d) for d in shape) or "scalar"


def _producers(plan: FunctionPlan) -> dict[str, Step]:
    found: dict[str, Step] = {}

    def walk(block: Block) -> None:
        for step in block.steps:
            for name in step.outputs:
                found[name] = step
            for inner in step.ctx.blocks:
                walk(inner)

    walk(plan.block)
    return found


def _contradiction(value: torch.Tensor, shape: tuple | None, dtype: str | None) -> str | None:
    """How ``value`` contradicts its declared type, or None (symbolic dims are not contradictions)."""
    kind = _kind(dtype)
    if kind is not None and kind != _value_kind(value):
        return f"holds {_value_kind(value)} values where its type is {dtype}"
    if shape is not None and None not in shape and tuple(value.shape) != tuple(shape):
        return f"is {_fmt(value.shape)} where its type is {_fmt(shape)}"
    return None


_ALLOCATION = re.compile(
    r"can't allocate memory|not enough memory|out of memory|Cannot allocate memory", re.I
)
_ASKED = re.compile(r"tried to allocate (\d+) bytes")


def _out_of_memory(error: BaseException) -> str | None:
    """How much an allocation that failed asked for ("" when unknown); None when ``error`` is not one."""
    if not isinstance(error, MemoryError) and not (
        isinstance(error, RuntimeError) and _ALLOCATION.search(str(error))
    ):
        return None
    asked = _ASKED.search(str(error))
    return _bytes(int(asked.group(1))) if asked else ""


def _bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1024
    return f"{value:.3g} PiB"


def op_failure(
    step: Step, env: dict[str, Any], plan: FunctionPlan, error: BaseException, spec: Any = None
) -> Exception:
    """The error to raise for ``step`` having raised ``error`` (see the module docstring for the rule)."""
    where = _where(step, spec)
    asked = _out_of_memory(error)
    if asked is not None:
        how_much = f" ({asked})" if asked else ""
        return OpFailedError(
            f"{where} asked for more memory than this machine can give{how_much}: check the input values that "
            "decide its size (a shape or length taken from an input, a long sequence), or run it on a machine "
            "with more memory"
        )
    declared = _declared(plan)
    why = first_line(error)
    static, stored = True, []
    for param, source in step.ctx.input_names.items():
        for name in source if isinstance(source, list) else [source]:
            value = env.get(name) if isinstance(name, str) else None
            if not isinstance(value, torch.Tensor):
                continue
            if name in plan.constants:
                # NOTE: type inference checks a constant's shape only where it decides the output type (a
                # reshape's shape, not a layer_norm's beta), so a damaged stored tensor can load and fail here.
                if value.dim() >= 1:
                    stored.append(f"{param!r} ({name}, {_fmt(value.shape)})")
                continue
            shape, dtype = declared.get(name, (None, None))
            wrong = _contradiction(value, shape, dtype)
            producer = _producers(plan).get(name) if wrong else None
            if wrong and producer is not None:
                return KernelFailedError(
                    f"{where} failed: {why}; its input {param!r} ({name}) {wrong}: the kernel of "
                    f"{_where(producer, spec)} returned a value coremltools' type inference does not allow (a "
                    "devicefit kernel bug, or coremltools')"
                )
            if shape is None or None in shape:
                static = False
    if static and not stored:
        return KernelFailedError(
            f"{where} failed on inputs that match the program's declared types (a valid program: a devicefit "
            f"kernel bug): {why}"
        )
    if static:
        return OpFailedError(
            f"{where} failed: {why}; its stored constant(s) {', '.join(stored)} may be damaged (coremltools does "
            "not check their shapes for this op: convert the model again), or this is a devicefit kernel bug (rerun "
            "with --debug for the traceback)",
            where,
            why,
        )
    return OpFailedError(
        f"{where} failed: {why}; the inputs' run-time shapes may be inconsistent with each other for this "
        "flexible-shape program (check the shapes you feed), or this is a devicefit kernel bug (rerun with --debug "
        "for the traceback)",
        where,
        why,
    )
