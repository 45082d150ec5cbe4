"""Costs of a flexible-shape program at concrete input shapes.

A program loaded from a package keeps flexible dimensions as free symbols, one per value, with no relation
between them: counting them as 1 (what :func:`devicefit.analyze.flops.op_cost` does alone) puts the FLOPs
and the latency bound below every shape the model accepts. Here the input shapes are bound to real sizes
and coremltools' own type inference is re-run op by op, so every op sees concrete shapes; the program's
types are restored afterwards (the pymil function is shared with the other analyses).

Which shapes: a range input at its default shape and at its upper bound (when bounded), each enumerated
shape of an enumerated input (Core ML accepts exactly those).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from devicefit.analyze.flops import OpCost, function_costs, iter_ops

__all__ = ["ShapeCase", "costs_at", "default_costs", "flexible_cases"]


@dataclass(frozen=True)
class ShapeCase:
    """One set of input shapes to cost: a label (``"default"``, ``"upper"``, ``"enumerated 2"``) and shapes."""

    label: str
    shapes: dict[str, tuple[int, ...]]

    def describe(self) -> str:
        return ", ".join(f"{k}={'x'.join(map(str, v))}" for k, v in self.shapes.items())


def flexible_cases(resolved: Any) -> list[ShapeCase]:
    """The shapes worth costing for a resolved function; empty when no input is flexible.

    Args:
        resolved: a :class:`devicefit.analyze.flops.ResolvedFunction` (its spec holds the shapes).
    """
    spec = resolved.spec
    if spec is None:
        return []
    desc = spec.description
    for f in getattr(desc, "functions", []):
        if f.name == resolved.name:
            desc = f
    default: dict[str, tuple[int, ...]] = {}
    upper: dict[str, tuple[int, ...]] = {}
    enumerated: dict[str, list[tuple[int, ...]]] = {}
    for feat in desc.input:
        if feat.type.WhichOneof("Type") != "multiArrayType":
            continue
        arr = feat.type.multiArrayType
        flex = arr.WhichOneof("ShapeFlexibility")
        if flex == "shapeRange":
            ranges = [(r.lowerBound, r.upperBound) for r in arr.shapeRange.sizeRanges]
            if all(lo == hi for lo, hi in ranges):
                continue
            base = tuple(int(d) for d in arr.shape) or tuple(lo for lo, _ in ranges)
            default[feat.name] = base
            # an unbounded axis (-1) has no upper shape: keep its default there
            upper[feat.name] = tuple(hi if hi > 0 else d for (_, hi), d in zip(ranges, base))
        elif flex == "enumeratedShapes":
            shapes = [tuple(int(d) for d in s.shape) for s in arr.enumeratedShapes.shapes]
            enumerated[feat.name] = shapes
            default[feat.name] = tuple(int(d) for d in arr.shape) or shapes[0]
    if not default:
        return []
    cases = [ShapeCase("default", dict(default))]
    if upper and any(upper[k] != default[k] for k in upper):
        cases.append(ShapeCase("upper bound", {**default, **upper}))
    for name, shapes in enumerated.items():
        for i, shape in enumerate(shapes, 1):
            if shape != default[name] or len(shapes) > 1:
                case = ShapeCase(f"enumerated {i}", {**default, name: shape})
                if case.shapes != cases[0].shapes:
                    cases.append(case)
    return cases


def costs_at(function: Any, shapes: dict[str, tuple[int, ...]]) -> list[OpCost] | None:
    """Per-op costs of a pymil ``function`` with its inputs at ``shapes``; None when inference fails.

    The function is restored afterwards, whatever happens.
    """
    try:
        with _bound_inputs(function, shapes):
            return function_costs(function)
    except Exception:  # an op whose type inference needs more than shapes: the caller falls back
        return None


def default_costs(resolved: Any) -> list[OpCost]:
    """Per-op costs at the default shapes of flexible inputs (the program as declared when none is flexible)."""
    cases = flexible_cases(resolved)
    if cases:
        costs = costs_at(resolved.function, cases[0].shapes)
        if costs is not None:
            return costs
    return function_costs(resolved.function)


@contextmanager
def _bound_inputs(function: Any, shapes: dict[str, tuple[int, ...]]) -> Iterator[None]:
    from coremltools.converters.mil.mil import types

    saved = [(v, v._sym_type, v._sym_val) for v in _all_vars(function)]
    try:
        for name, shape in shapes.items():
            var = function.inputs[name]
            var._sym_type = types.tensor(var.dtype, tuple(int(d) for d in shape))
        _infer(function)
        yield
    finally:
        for var, sym_type, sym_val in saved:
            var._sym_type, var._sym_val = sym_type, sym_val


def _infer(block: Any) -> None:
    with block:
        for op in block.operations:
            op.type_value_inference(overwrite_output=True)
            for inner in op.blocks:
                _infer(inner)


def _all_vars(function: Any) -> list[Any]:
    out = list(function.inputs.values())
    for op in function.operations:
        out.extend(op.outputs)
    for op in iter_ops(function):
        for inner in op.blocks:
            out.extend(inner.inputs)
            for inner_op in inner.operations:
                out.extend(inner_op.outputs)
    return out
