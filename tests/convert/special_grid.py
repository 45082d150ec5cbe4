"""A wide fp32 grid for the special-function translations and a tolerance check that reports the worst point."""

from __future__ import annotations

import numpy as np
import torch

from tests.convert.elementwise_helpers import run_fn


def wide_grid(seed: int = 0, dense: tuple[float, float] = (-12.0, 12.0)) -> torch.Tensor:
    """Magnitudes 1e-30 .. 1e30 of both signs, a dense uniform band, integers, ±0, ±inf and NaN."""
    rng = np.random.default_rng(seed)
    magnitudes = np.geomspace(1e-30, 1e30, 1500)
    values = np.concatenate(
        [magnitudes, -magnitudes, rng.uniform(*dense, 3000), np.arange(-8, 9), [np.inf, -np.inf, np.nan]]
    )
    return torch.cat([torch.tensor(values, dtype=torch.float32), torch.tensor([-0.0])])


def check_within(
    fn, x: torch.Tensor, frontend: str, op: str, rtol: float, atol: float = 0.0, precision: str = "fp32"
) -> float:
    """Convert ``fn``, run it, and assert ``|got - torch| <= atol + rtol |torch|`` wherever PyTorch is finite
    (same NaNs and infinities elsewhere). Returns the largest relative error where ``|torch| > 1e-3``."""
    got, expected, rescued = run_fn(fn, (x,), frontend, precision)
    assert op in rescued, rescued
    g, e = got[0].astype(np.float64), expected[0].astype(np.float64)
    np.testing.assert_array_equal(
        np.isnan(g), np.isnan(e), err_msg=f"NaN at {x.numpy()[np.isnan(g) != np.isnan(e)]}"
    )
    infinite = np.isinf(e)
    np.testing.assert_array_equal(g[infinite], e[infinite], err_msg=f"inf at {x.numpy()[infinite]}")
    finite = np.isfinite(e)
    excess = np.abs(g - e) - (atol + rtol * np.abs(e))
    worst = int(np.argmax(np.where(finite, excess, -np.inf)))
    assert excess[worst] <= 0 or not finite[worst], (float(x[worst]), g[worst], e[worst])
    sized = finite & (np.abs(e) > 1e-3)
    return float(np.max(np.abs(g - e)[sized] / np.abs(e)[sized])) if sized.any() else 0.0
