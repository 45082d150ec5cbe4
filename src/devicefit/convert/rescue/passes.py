"""Corrections to coremltools 9.0 graph passes, installed with the rescue translations (scoped to a conversion).

``cast_optimization`` fuses two consecutive casts when the pair keeps the data range and resolution of the
first's input. It models a cast to bool as the range [0, 1] at resolution 1, so it fused
``cast(fp32 -> int32) -> cast(int32 -> bool)`` into ``cast(fp32 -> bool)``; but a cast to bool tests for
non-zero, so the truncation of the int step is lost: ``x.int().bool()`` of 0.5 became True (PyTorch: False).
Found by the differential fuzzer (tests/interp/difffuzz.py). A float -> int -> bool pair is now left unfused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_saved: list[Callable[..., bool]] = []


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


def unpatch_passes() -> None:
    from coremltools.converters.mil.mil.passes.defs.optimize_repeat_ops import cast_optimization

    if _saved:
        cast_optimization._is_cast_ops_fusable = _saved.pop()  # type: ignore[method-assign]
