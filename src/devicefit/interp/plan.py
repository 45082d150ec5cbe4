"""The interpreter's plan: what loading and compiling produce and what the run loop executes.

Plain data only (no loading, no running), so the load, compile and run modules all depend on this one and
never on each other in a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from devicefit.interp.registry import Kernel, OpContext


@dataclass
class TensorSpec:
    """An input, output or state of a function.

    Attributes:
        name: feature name.
        dtype: MIL dtype name (``"fp32"``, ``"fp16"``, ``"int32"``...).
        shape: the default / fixed shape.
        kind: ``"tensor"``, ``"image"`` or ``"state"``.
        shape_range: per-dimension ``(lower, upper)`` bounds (upper -1 = unbounded) for RangeDim inputs.
        enumerated_shapes: the allowed shapes for EnumeratedShapes inputs.
    """

    name: str
    dtype: str | None
    shape: tuple[int, ...] | None
    kind: str = "tensor"
    shape_range: list[tuple[int, int]] | None = None
    enumerated_shapes: list[tuple[int, ...]] | None = None

    @property
    def is_flexible(self) -> bool:
        return bool(self.shape_range or self.enumerated_shapes)

    def describe(self) -> str:
        if self.enumerated_shapes:
            shape = " | ".join("x".join(map(str, s)) for s in self.enumerated_shapes)
        elif self.shape_range:
            shape = "x".join(
                f"{lo}" if lo == hi else f"{lo}..{'inf' if hi < 0 else hi}" for lo, hi in self.shape_range
            )
        else:
            shape = "x".join(map(str, self.shape or ()))
        return f"{self.name}: {self.dtype}[{shape}]"


@dataclass
class Step:
    """One op of the plan, bound to its kernel."""

    kernel: Kernel
    op_type: str
    name: str
    consts: dict[str, Any]
    dyn: list[tuple[str, str]]
    dyn_attrs: list[tuple[str, Any]]
    variadic: list[tuple[str, list[tuple[str | None, Any]]]]
    outputs: list[str]
    round_fp16: list[int]
    ctx: OpContext
    held: list[torch.dtype | None]
    declared_shapes: list[tuple | None]
    # Derived once, read by the hot loop (run.py): the kernel function, whether arguments are only
    # constants + environment lookups (no conversions, variadics or context), and the single-output shape.
    fn: Any = field(init=False, repr=False)
    simple: bool = field(init=False, repr=False)
    single: bool = field(init=False, repr=False)
    out0: str = field(init=False, repr=False)
    held0: torch.dtype | None = field(init=False, repr=False)
    round0: bool = field(init=False, repr=False)

    def reads(self) -> list[str]:
        """Names of every value this op reads, including the reads of ops in its nested blocks."""
        found: list[str] = []
        for src in self.ctx.input_names.values():
            found.extend(src if isinstance(src, list) else [src])
        for block in self.ctx.blocks:
            for inner in block.steps:
                found.extend(inner.reads())
        return found

    def __post_init__(self) -> None:
        self.fn = self.kernel.fn
        self.simple = not (self.dyn_attrs or self.variadic or self.kernel.wants_ctx)
        self.single = len(self.outputs) == 1
        self.out0 = self.outputs[0] if self.outputs else ""
        self.held0 = self.held[0] if self.held else None
        self.round0 = 0 in self.round_fp16


@dataclass
class Block:
    """A sequence of steps with named inputs (bound per call) and outputs."""

    inputs: list[str]
    steps: list[Step]
    outputs: list[str]
    input_dtypes: list[str | None] = field(default_factory=list)


@dataclass
class FunctionPlan:
    """One compiled function: its interface, its top-level block and the constants evaluated at load."""

    name: str
    opset: int
    opset_name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    states: list[TensorSpec]
    block: Block
    constants: dict[str, Any]
    op_counts: dict[str, int]
    pymil_function: Any = None
