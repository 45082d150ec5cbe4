"""Helpers shared by kernels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from devicefit.errors import ModelLoadError
from devicefit.interp.registry import ints


def norm_axes(axes: list[int] | None, rank: int) -> list[int]:
    """Negative axes -> positive; None -> all axes."""
    if axes is None:
        return list(range(rank))
    return [a + rank if a < 0 else a for a in axes]


def norm_axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def ints_at_least(low: int, op: str, name: str) -> Callable[[Any], list[int]]:
    """An ``ints`` attribute converter that refuses values below ``low`` (strides, dilations, pads).

    Converters run when the plan is prepared, so a hand-edited program fails at load with a one-line error
    instead of deep inside torch.
    """

    def convert(value: Any) -> list[int]:
        values = ints(value)
        if any(v < low for v in values):
            raise ModelLoadError(
                f"{op}: {name} {values} must all be >= {low}; the program is corrupted or was edited by hand, "
                "re-export it"
            )
        return values

    return convert
