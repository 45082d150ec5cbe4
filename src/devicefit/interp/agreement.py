"""Whether the compiled path agrees with the interpreter: bit for bit, or within a stated tolerance."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from devicefit.interp.specialize import NotLowerable


def shuffled(feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same values in another order (a valid input for any model that accepted ``feeds``)."""
    gen = torch.Generator().manual_seed(1234)
    out = {}
    for name, t in feeds.items():
        flat = t.reshape(-1)
        out[name] = flat[torch.randperm(flat.numel(), generator=gen)].reshape(t.shape).clone()
    return out


def same_array(a: np.ndarray, b: np.ndarray, rtol: float | None = None) -> bool:
    """``a`` equals the reference ``b``: bit for bit (``rtol`` None), else within ``rtol * max |b|``."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind != "f":
        return bool(np.array_equal(a, b))
    if rtol is None:
        return bool(np.array_equal(a, b, equal_nan=True))
    finite = np.isfinite(b)
    # NaN and inf where the reference has them, and only there
    if not np.array_equal(a[~finite], b[~finite], equal_nan=True) or not np.isfinite(a[finite]).all():
        return False
    if not finite.any():
        return True
    a64, b64 = a[finite].astype(np.float64), b[finite].astype(np.float64)
    return bool(np.max(np.abs(a64 - b64)) <= rtol * np.max(np.abs(b64)))


def compare_outputs(
    names: list[str], got: list[Any], expected: list[Any], what: str, rtol: float | None
) -> None:
    for name, g, e in zip(names, got, expected):
        if isinstance(e, torch.Tensor) and isinstance(g, torch.Tensor):
            same = same_array(g.detach().numpy(), e.detach().numpy(), rtol)
        else:
            same = type(g) is type(e) and not isinstance(e, torch.Tensor)
        if not same:
            raise NotLowerable("", "", f"output {name!r} differs from the interpreter on {what}")


__all__ = ["compare_outputs", "same_array", "shuffled"]
