"""Run a small function through conversion and the interpreter, returning every output beside PyTorch's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from tests.convert.helpers import source_of


class Fn(torch.nn.Module):
    """A module whose forward is ``fn(*inputs)`` (a lambda keeps each test case on one line)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *inputs: torch.Tensor) -> Any:
        return self.fn(*inputs)


def run_fn(
    fn: Callable[..., Any], inputs: tuple, frontend: str, precision: str = "fp32"
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """(the interpreter's outputs, PyTorch's, the rescues used), outputs in PyTorch's order."""
    from devicefit import interp
    from devicefit.convert import ConvertOptions, convert

    source = source_of(Fn(fn).eval(), inputs)
    result = convert(source, ConvertOptions(precision=precision, frontend=frontend))
    feeds = source.coreml_feeds(source.example_inputs)
    outputs = interp.load(result.mlmodel).run(feeds, precision=precision)
    reference = source.reference(source.example_inputs)
    return [outputs[name] for name in reference], list(reference.values()), list(result.scan.rescued)


def mistyped_values(fn: Callable[..., Any], inputs: tuple, frontend: str = "torchscript") -> list[tuple]:
    """(value, declared shape, computed shape) for every value of ``fn``'s fp32 program whose declared shape is not
    the shape the interpreter computes for it (a runtime that trusts the types would go wrong there)."""
    from devicefit import interp
    from devicefit.convert import ConvertOptions, convert

    source = source_of(Fn(fn).eval(), inputs)
    program = interp.load(convert(source, ConvertOptions(precision="fp32", frontend=frontend)).mlmodel)
    found = program.type_mismatches(source.coreml_feeds(source.example_inputs))
    return [(m.value, m.declared, m.computed) for m in found]


def _shape_checked(got: np.ndarray, expected: np.ndarray) -> np.ndarray:
    # NOTE: a Core ML model output has rank >= 1: coremltools gives a 0-d result (any full reduction) shape (1,)
    if expected.ndim == 0 and got.shape == (1,):
        got = got.reshape(())
    assert got.shape == expected.shape, (got.shape, expected.shape)
    return got


def assert_close_elementwise(got: np.ndarray, expected: np.ndarray, rtol: float, atol: float = 0.0) -> None:
    """Same shape, NaNs, infinities and signs of zero, every finite value within ``rtol`` of PyTorch's."""
    got = _shape_checked(got, expected)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    infinite = np.isinf(expected)
    np.testing.assert_array_equal(got[infinite], expected[infinite])
    np.testing.assert_array_equal(np.signbit(got[expected == 0]), np.signbit(expected[expected == 0]))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=rtol, atol=atol)


def assert_same_integers(got: np.ndarray, expected: np.ndarray) -> None:
    """Integer (or bool) outputs: same kind, shape and values (Core ML's int32 stands for PyTorch's int64; a
    model output cannot be bool in Core ML, so coremltools casts a bool output to fp32 at the very end)."""
    got = _shape_checked(got, expected)
    if expected.dtype == np.bool_ and got.dtype == np.float32:
        assert set(np.unique(got)) <= {0.0, 1.0}
        got = got.astype(np.bool_)
    assert got.dtype.kind == expected.dtype.kind or {got.dtype.kind, expected.dtype.kind} <= {"i", "u"}, (
        got.dtype,
        expected.dtype,
    )
    np.testing.assert_array_equal(got, expected.astype(got.dtype))


def check_rescued(
    fn: Callable[..., Any],
    inputs: tuple,
    frontend: str,
    op: str | tuple[str, ...],
    rtol: float = 0.0,
    precision: str = "fp32",
    atol: float = 0.0,
) -> None:
    """``fn`` converted with ``frontend`` uses devicefit's translation of ``op`` (of each, for a tuple), and the
    interpreter's outputs match PyTorch's: integers exactly, floats elementwise within ``rtol`` / ``atol``."""
    got, expected, rescued = run_fn(fn, inputs, frontend, precision)
    for name in (op,) if isinstance(op, str) else op:
        assert name in rescued, (name, rescued)
    for g, e in zip(got, expected):
        if e.dtype.kind in "iub":
            assert_same_integers(g, e)
        else:
            assert_close_elementwise(g, e, rtol=rtol, atol=atol)
