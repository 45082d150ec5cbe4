"""Flexible input shapes: build them, check the model at every shape, and say what the Neural Engine makes of them.

Core ML has two kinds of flexible inputs. ``ct.EnumeratedShapes`` (up to 128 shapes) can stay on the Neural
Engine; ``ct.RangeDim`` runs there only at its default shape, other shapes go to the CPU/GPU (Apple developer
forums thread 724930; coremltools docs flexible-inputs, faqs). A converted flexible model can also be wrong
at shapes other than the traced one, so :func:`validate_shapes` runs the interpreter at every enumerated
shape (and at a range's ends and default) and compares with PyTorch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from devicefit.errors import InputError, first_line

__all__ = [
    "MAX_ENUMERATED_ON_NE",
    "FlexReport",
    "ShapeCheck",
    "enumerated_input",
    "ne_implication",
    "range_input",
    "shapes_to_check",
    "validate_shapes",
]

MAX_ENUMERATED_ON_NE = 128
Dim = int | tuple[int, int] | tuple[int, int, int]


def enumerated_input(name: str, shapes: Sequence[Sequence[int]], default: Sequence[int] | None = None,
                     dtype: Any = np.float32) -> Any:  # fmt: skip
    """A ``ct.TensorType`` accepting exactly ``shapes`` (default: the first)."""
    from devicefit._lazy import coremltools

    ct = coremltools()
    if not shapes:
        raise InputError(f"input {name!r}: give at least one enumerated shape")
    ranks = {len(s) for s in shapes}
    if len(ranks) != 1:
        raise InputError(f"input {name!r}: enumerated shapes must share one rank, got ranks {sorted(ranks)}")
    shapes = [tuple(int(d) for d in s) for s in shapes]
    default_shape = tuple(default) if default is not None else shapes[0]
    if default_shape not in shapes:
        raise InputError(f"input {name!r}: default {default_shape} is not one of the enumerated shapes")
    return ct.TensorType(
        name=name, shape=ct.EnumeratedShapes(shapes=shapes, default=default_shape), dtype=dtype
    )


def range_input(name: str, dims: Sequence[Dim], dtype: Any = np.float32) -> Any:
    """A ``ct.TensorType`` with ``ct.RangeDim`` where ``dims`` has ``(lower, upper[, default])`` tuples."""
    from devicefit._lazy import coremltools

    ct = coremltools()
    shape: list[Any] = []
    for d in dims:
        if isinstance(d, tuple):
            lo, hi = int(d[0]), int(d[1])
            default = int(d[2]) if len(d) > 2 else lo
            if lo < 1 or default < lo or (hi != -1 and (hi < lo or default > hi)):
                raise InputError(
                    f"input {name!r}: bad range {d}; need 1 <= lower <= default <= upper (upper -1 = unbounded)"
                )
            shape.append(ct.RangeDim(lower_bound=lo, upper_bound=hi, default=default))
        else:
            shape.append(int(d))
    return ct.TensorType(name=name, shape=ct.Shape(shape=shape), dtype=dtype)


def shapes_to_check(spec: Any) -> list[tuple[int, ...]]:
    """Shapes worth checking for one input (an interp TensorSpec): every enumerated shape, or a range's
    lower ends, default and upper ends (unbounded uppers skipped)."""
    if spec.enumerated_shapes:
        return [tuple(s) for s in spec.enumerated_shapes]
    if spec.shape_range:
        lows = tuple(lo for lo, _ in spec.shape_range)
        default = tuple(spec.shape) if spec.shape else lows
        highs = tuple(hi if hi > 0 else d for (_, hi), d in zip(spec.shape_range, default))
        return list(dict.fromkeys([lows, default, highs]))
    return [tuple(spec.shape or ())]


@dataclass
class ShapeCheck:
    """The comparison at one set of input shapes."""

    shapes: dict[str, tuple[int, ...]]
    max_abs_error: float
    rel_error: float
    ok: bool
    error: str = ""


@dataclass
class FlexReport:
    checks: list[ShapeCheck]
    ne_implication: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def all_ok(self) -> bool:
        return all(c.ok for c in self.checks)


def ne_implication(specs: Sequence[Any]) -> list[str]:
    """What flexible inputs mean for the Neural Engine, one line per flexible input."""
    lines = []
    for s in specs:
        if s.enumerated_shapes:
            n = len(s.enumerated_shapes)
            lines.append(
                f"{s.name}: {n} enumerated shapes: can stay on the Neural Engine"
                if n <= MAX_ENUMERATED_ON_NE
                else f"{s.name}: {n} enumerated shapes (> {MAX_ENUMERATED_ON_NE}): may not stay on the Neural Engine"
            )
        elif s.shape_range:
            lines.append(
                f"{s.name}: RangeDim: only the default shape {tuple(s.shape or ())} runs on the Neural Engine; "
                "others run on the CPU/GPU (use EnumeratedShapes to keep them there)"
            )
    return lines


def _torch_outputs(module: Any, feeds: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
    import torch

    args = [torch.from_numpy(feeds[n]) for n in names]
    with torch.no_grad():
        out = module(*args)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o.detach().numpy() for o in outs]


def validate_shapes(model: Any, module: Any, rtol: float = 1e-3, precision: str = "fp32",
                    function: str | None = None, seed: int = 0,
                    to_model_feeds: Any = None) -> FlexReport:  # fmt: skip
    """Run ``model`` (an MLModel, path or interp Program) at every shape to check and compare with ``module``.

    Inputs are matched to ``module``'s positional arguments in the model's input order; outputs in order.
    A check passes when max |coreml - torch| <= rtol * max |torch|. ``to_model_feeds`` maps the torch-side
    inputs to what the converted model takes (image inputs get pixels, see ``devicefit.check.program_feeds``).
    """
    from devicefit import interp

    prog = (
        model if hasattr(model, "run") and hasattr(model, "inputs") else interp.load(model, function=function)
    )
    specs = list(prog.inputs)
    per_input = [shapes_to_check(s) for s in specs]
    rng = np.random.default_rng(seed)
    checks: list[ShapeCheck] = []
    # the k-th point uses each input's k-th shape (its default once it has no more)
    for k in range(max(len(c) for c in per_input) if per_input else 0):
        shapes = {s.name: c[k] if k < len(c) else tuple(s.shape or c[0]) for s, c in zip(specs, per_input)}
        feeds = {
            n: (rng.standard_normal(sh).astype(np.float32) if s.dtype and s.dtype.startswith("fp")
                else rng.integers(0, 4, sh).astype(np.int32))
            for (n, sh), s in zip(shapes.items(), specs)
        }  # fmt: skip
        try:
            got = prog.run(to_model_feeds(feeds) if to_model_feeds else feeds, precision=precision)
            expected = _torch_outputs(module, feeds, [s.name for s in specs])
        except Exception as e:  # a shape the converted model cannot take is the finding itself
            message = first_line(e)[:200]
            checks.append(ShapeCheck(shapes, float("inf"), float("inf"), False, message))
            continue
        out_names = [o.name for o in prog.outputs]
        if len(out_names) != len(expected):  # a missing output is a failed check, not a pass
            message = f"model has {len(out_names)} outputs, torch module {len(expected)}"
            checks.append(ShapeCheck(shapes, float("inf"), float("inf"), False, message))
            continue
        abs_err = rel = 0.0
        for name, exp in zip(out_names, expected):
            actual = np.asarray(got[name], np.float64)
            want = np.asarray(exp, np.float64)
            if actual.shape != want.shape:
                abs_err = rel = float("inf")
                break
            diff = float(np.abs(actual - want).max(initial=0.0))
            abs_err = max(abs_err, diff)
            rel = max(rel, diff / max(float(np.abs(want).max(initial=0.0)), 1e-30))
        checks.append(ShapeCheck(shapes, abs_err, rel, rel <= rtol))
    return FlexReport(checks, ne_implication(specs))
