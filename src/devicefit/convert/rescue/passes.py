"""Corrections to coremltools 9.0 graph passes, installed with the rescue translations (scoped to a conversion).

``cast_optimization`` fuses two consecutive casts when the pair keeps the data range and resolution of the
first's input. It models a cast to bool as the range [0, 1] at resolution 1, so it fused
``cast(fp32 -> int32) -> cast(int32 -> bool)`` into ``cast(fp32 -> bool)``; but a cast to bool tests for
non-zero, so the truncation of the int step is lost: ``x.int().bool()`` of 0.5 became True (PyTorch: False).
Found by the differential fuzzer (tests/interp/difffuzz.py). A float -> int -> bool pair is now left unfused.

``reduce_transposes`` reads the ``axes`` input of every reduce op a transpose reaches; a full reduction
(``x.permute(...).sum()``) has none, and the conversion failed with ``KeyError: 'axes'``. Such an op now stops
the transpose (it could not move through it anyway: there are no axes to remap). Also found by the fuzzer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_saved: list[Callable[..., bool]] = []
_saved_reduce: list[tuple[Callable[..., None], Callable[..., bool]]] = []


def _truncates_before_bool(cast_1: Any, cast_2: Any) -> bool:
    """``cast_1`` turns a float into an integer and ``cast_2`` that integer into a bool."""
    from coremltools.converters.mil.mil import types

    first = types.string_to_builtin(cast_1.dtype.val)
    second = types.string_to_builtin(cast_2.dtype.val)
    return types.is_float(cast_1.x.dtype) and types.is_int(first) and types.is_bool(second)


def patch_passes() -> None:
    """Install the corrections (nested calls are not expected: the rescue registry installs once)."""
    from coremltools.converters.mil.mil.passes.defs.optimize_repeat_ops import cast_optimization

    original = cast_optimization._is_cast_ops_fusable
    _saved.append(original)

    def is_fusable(self: Any, cast_1: Any, cast_2: Any) -> bool:
        if _truncates_before_bool(cast_1, cast_2):
            return False
        return original(self, cast_1, cast_2)

    cast_optimization._is_cast_ops_fusable = is_fusable  # type: ignore[method-assign]
    _patch_full_reductions()


def _patch_full_reductions() -> None:
    from coremltools.converters.mil.mil.passes.defs.optimize_repeat_ops import _TransformReduceMean

    init, can_pass = _TransformReduceMean.__init__, _TransformReduceMean.can_transpose_pass
    _saved_reduce.append((init, can_pass))

    def safe_init(self: Any, **kwargs: Any) -> None:
        try:
            init(self, **kwargs)
        except KeyError:
            if "axes" in getattr(self, "op", None).inputs:  # type: ignore[union-attr]
                raise  # another missing key: not the case handled here
            self.axes_var = None  # a full reduction: no axes input

    def safe_can_pass(self: Any) -> bool:
        return self.axes_var is not None and can_pass(self)

    _TransformReduceMean.__init__ = safe_init  # type: ignore[method-assign]
    _TransformReduceMean.can_transpose_pass = safe_can_pass  # type: ignore[method-assign]


def unpatch_passes() -> None:
    from coremltools.converters.mil.mil.passes.defs.optimize_repeat_ops import cast_optimization

    if _saved:
        cast_optimization._is_cast_ops_fusable = _saved.pop()  # type: ignore[method-assign]
    if _saved_reduce:
        from coremltools.converters.mil.mil.passes.defs.optimize_repeat_ops import _TransformReduceMean

        _TransformReduceMean.__init__, _TransformReduceMean.can_transpose_pass = (  # type: ignore[method-assign]
            _saved_reduce.pop()
        )
