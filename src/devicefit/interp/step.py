"""Calling one step's kernel and holding its outputs to the kernel contract.

Shared by the compiler (which evaluates ``constexpr_*`` ops at load time) and the run loop, so neither
imports the other.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from devicefit.errors import DevicefitError
from devicefit.interp.plan import Block, FunctionPlan, Step


class KernelContractError(RuntimeError):
    """A kernel returned the wrong number, kind or shape of outputs (a bug in devicefit, not in the model)."""


class OpFailedError(DevicefitError, RuntimeError):
    """An op raised while running on values the program does not describe (bad input, exit 2).

    Its message names the op (with its PyTorch origin when the package records it) and why the program or
    its inputs are at fault; see :mod:`devicefit.interp.failures` for the rule.

    Attributes:
        where: the failing op, ``module (Type) at file:line: op 'lstm' (name)`` (empty when unknown).
        why: the kernel's one-line reason (empty when unknown).
    """

    def __init__(self, message: str, where: str = "", why: str = "") -> None:
        super().__init__(message)
        self.where, self.why = where, why


class KernelFailedError(RuntimeError):
    """A kernel raised on a valid op whose inputs match the program's declared types: a bug in devicefit.

    Not a :class:`~devicefit.errors.DevicefitError`: the CLI reports it as an internal error (exit 3).
    """


def call_step(
    step: Step,
    env: dict[str, Any],
    precision: str,
    run_block: Callable[..., list] | None,
    states: dict[str, torch.Tensor] | None,
) -> tuple:
    """Call one step's kernel with its arguments gathered from ``env``; returns its outputs as a tuple."""
    kwargs = dict(step.consts)
    for param, name in step.dyn:
        kwargs[param] = env[name]
    for param, conv in step.dyn_attrs:
        kwargs[param] = conv(kwargs[param])
    for param, items in step.variadic:
        kwargs[param] = [env[n] if n is not None else c for n, c in items]
    if step.kernel.wants_ctx:
        ctx = copy.copy(step.ctx)
        ctx.precision = precision
        ctx.run_block = run_block
        ctx.states = states
        kwargs["ctx"] = ctx
    out = step.kernel.fn(**kwargs)
    if not isinstance(out, tuple):
        out = (out,)
    if len(out) != len(step.outputs):
        wrong_count(step, out)
    return out


def wrong_count(step: Step, out: Any) -> None:
    """Raise KernelContractError for a kernel that returned the wrong number of outputs."""
    got = len(out) if type(out) is tuple else 1
    raise KernelContractError(
        f"kernel {step.kernel.where} returned {got} outputs for op {step.op_type!r} ({step.name}), "
        f"which declares {len(step.outputs)}"
    )


def _kind(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return "bool"
    return "float" if dtype.is_floating_point else "int"


def held_output(step: Step, i: int, value: Any, strict: bool) -> Any:
    """Output ``i`` of ``step`` in its held dtype.

    A kernel may return a wider or narrower dtype of the declared kind (torch integer ops give int64 for an
    int32 output) and is converted; a value of another kind (a float for an int output, a bool for a
    float output, a non-tensor for a tensor output) is a kernel bug and raises instead of being coerced,
    since coercing would hide wrong results (STYLE.md).

    Raises:
        KernelContractError: the value is not a tensor of the declared kind (or, when ``strict``, not of
            the declared static shape).
    """
    held = step.held[i]
    if held is None:
        return value
    if isinstance(value, (bool, int, float, np.ndarray, np.generic)):
        # NOTE: a numeric scalar or numpy array is a tensor in all but type (classify returns its label as
        # a Python int); its kind is still checked below.
        value = torch.as_tensor(value)
    if not isinstance(value, torch.Tensor):
        raise KernelContractError(
            f"kernel {step.kernel.where} returned {type(value).__name__} for output {step.outputs[i]!r} of op "
            f"{step.op_type!r} ({step.name}); expected a {step.ctx.output_dtypes[i]} tensor"
        )
    if value.dtype != held:
        if _kind(value.dtype) != _kind(held):
            raise KernelContractError(
                f"kernel {step.kernel.where} returned {value.dtype} for output {step.outputs[i]!r} of op "
                f"{step.op_type!r} ({step.name}); expected {step.ctx.output_dtypes[i]} (held as {held})"
            )
        value = value.to(held)
    if strict:
        check_shape(step, i, value)
    return value


@dataclass(frozen=True)
class TypeMismatch:
    """A value whose computed shape is not the static shape its program declares for it.

    The real Core ML runtime plans memory and the ops that read the value from the declared type, so on a device
    such a program may compute another shape or refuse to load; this interpreter follows the values.

    Attributes:
        value: the value's MIL name (an op output).
        op_type: the MIL op producing it.
        op_name: that op's name.
        declared: the declared shape (``None`` for a dynamic dimension).
        computed: the shape the op computes from its inputs.
    """

    value: str
    op_type: str
    op_name: str
    declared: tuple
    computed: tuple

    def describe(self) -> str:
        return f"{self.op_type} {self.value!r} is declared {self.declared} but computes {self.computed}"


class DeclaredTypeError(KernelContractError):
    """A value's computed shape differs from its declared static shape (strict runs only).

    Either the program's declared type is wrong (a translation bug: a device trusts the type) or the kernel is.
    """

    def __init__(self, mismatch: TypeMismatch, where: str) -> None:
        super().__init__(
            f"{mismatch.describe()} (kernel {where}): the program's declared type or the kernel is wrong; a "
            "device plans from the declared type"
        )
        self.mismatch = mismatch


def shape_mismatch(step: Step, i: int, shape: tuple) -> TypeMismatch | None:
    """The mismatch of output ``i`` of ``step``, computed with ``shape``, against its declared shape; None when
    they agree or nothing static is declared.

    NOTE: a ``None`` dimension is dynamic (symbolic) and matches any size; an unknown rank is no declaration.
    """
    declared = step.declared_shapes[i]
    if declared is None:
        return None
    if len(shape) == len(declared) and all(d is None or d == a for d, a in zip(declared, shape)):
        return None
    return TypeMismatch(step.outputs[i], step.op_type, step.name, tuple(declared), tuple(shape))


def check_shape(step: Step, i: int, value: torch.Tensor) -> None:
    """Raise DeclaredTypeError when output ``i`` differs from its declared static shape."""
    mismatch = shape_mismatch(step, i, tuple(value.shape))
    if mismatch is not None:
        raise DeclaredTypeError(mismatch, step.kernel.where)


STRICT_TYPES_ENV = "DEVICEFIT_STRICT_TYPES"


def strict_by_default() -> bool:
    """Whether runs check declared types unless told: ``DEVICEFIT_STRICT_TYPES`` set to anything but 0 / empty."""
    return os.environ.get(STRICT_TYPES_ENV, "") not in ("", "0")


def all_steps(block: Block) -> Iterator[Step]:
    """Every step of ``block``, nested blocks' steps (loop bodies, branches) after the op that holds them."""
    for step in block.steps:
        yield step
        for inner in step.ctx.blocks:
            yield from all_steps(inner)


def type_mismatches(plan: FunctionPlan, shapes: Mapping[str, tuple]) -> list[TypeMismatch]:
    """Every op output named in ``shapes`` (value name -> computed shape) whose shape is not its declared static
    shape, in program order."""
    found = []
    for step in all_steps(plan.block):
        for i, name in enumerate(step.outputs):
            if name in shapes:
                mismatch = shape_mismatch(step, i, tuple(shapes[name]))
                if mismatch is not None:
                    found.append(mismatch)
    return found
