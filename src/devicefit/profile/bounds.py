"""Roofline lower bounds for ``devicefit profile --target DEVICE``: what the device could do at best.

Measured numbers come from this host; a bound says how fast the model could run on an Apple device given
its published peaks (:mod:`devicefit.analyze.roofline`). It is a lower bound, never a measurement.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from devicefit.errors import InputError

CORE_ML_SUFFIXES = (".mlpackage", ".mlmodel")


def check_targets(model: Any, devices: Sequence[str]) -> list[Any]:
    """The catalog devices for ``devices``, refusing what :func:`device_bounds` cannot bound (no loading).

    Raises:
        InputError: unknown device, or a model the roofline cannot read (ONNX, TorchScript).
    """
    if not devices:
        return []
    from devicefit.analyze.catalog import get_device

    resolved = list(dict.fromkeys(get_device(d) for d in devices))
    if isinstance(model, (str, os.PathLike)) and Path(model).suffix.lower() not in CORE_ML_SUFFIXES:
        raise InputError(
            f"--target needs a Core ML model (.mlpackage or .mlmodel) to bound its latency, got {Path(model).name};"
            " convert it first (devicefit check -o DIR writes DIR/model.mlpackage)"
        )
    return resolved


def device_bounds(model: Any, devices: Sequence[str]) -> list[dict[str, Any]]:
    """One :func:`devicefit.analyze.roofline.latency_entry` dict per device (catalog id or name).

    Args:
        model: a ``.mlpackage`` / ``.mlmodel`` path or an MLModel (the roofline reads the ML Program).
        devices: catalog ids; empty gives no bounds.

    Raises:
        InputError: unknown device, or a model the roofline cannot read (ONNX, TorchScript).
    """
    resolved = check_targets(model, devices)
    if not resolved:
        return []
    from devicefit.analyze.flops import resolve_function
    from devicefit.analyze.roofline import latency_bounds, latency_entry
    from devicefit.analyze.shapes import default_costs

    costs = default_costs(resolve_function(model))  # flexible inputs at their default shape
    return [latency_entry(latency_bounds(costs, dev)) for dev in resolved]
