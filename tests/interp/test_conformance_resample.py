"""resample over every sampling x padding x coordinates mode x align_corners combination, against a numpy
reference written from the MIL spec's 1-D padding examples (tap by tap, no grid_sample)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.interp import milprog

RNG = np.random.default_rng(3)
X = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
# coordinates well outside the image too (several reflections away), never exactly on a rounding tie
COORDS = {
    "unnormalized": RNG.uniform(-9.0, 13.0, (2, 3, 6, 2)),
    "normalized_minus_one_to_one": RNG.uniform(-3.5, 3.5, (2, 3, 6, 2)),
    "normalized_zero_to_one": RNG.uniform(-1.2, 2.2, (2, 3, 6, 2)),
}


def ref_index(i: int, size: int, padding: str) -> int | None:
    """The source index a tap at integer position ``i`` reads (None: the constant pad value)."""
    if 0 <= i < size:
        return i
    if padding == "constant":
        return None
    if padding == "border":
        return min(max(i, 0), size - 1)
    if padding == "reflection":  # |1, 2, 3| -> |2, 3, 2, 1, 2, 3, 2, 1, 2|: mirror about the edge pixels
        period = 2 * (size - 1)
        if period == 0:
            return 0
        j = i % period
        return j if j < size else period - j
    period = 2 * size  # symmetric: |1, 2, 3| -> |3, 2, 1, 1, 2, 3, 3, 2, 1|
    j = i % period
    return j if j < size else period - 1 - j


def ref_pixel(c: float, size: int, mode: str, align: bool) -> float:
    if mode == "unnormalized":
        return c
    if mode == "normalized_zero_to_one":
        c = 2 * c - 1
    return (c + 1) / 2 * (size - 1) if align else ((c + 1) * size - 1) / 2


def ref_resample(x, coords, sampling, padding, value, mode, align):
    b, ch, h, w = x.shape
    out = np.zeros((b, ch, coords.shape[1], coords.shape[2]))

    def tap(n, yi, xi):
        sy, sx = ref_index(yi, h, padding), ref_index(xi, w, padding)
        return np.full(ch, value) if sy is None or sx is None else x[n, :, sy, sx]

    for n, i, j in itertools.product(range(b), range(coords.shape[1]), range(coords.shape[2])):
        px = ref_pixel(coords[n, i, j, 0], w, mode, align)
        py = ref_pixel(coords[n, i, j, 1], h, mode, align)
        if sampling == "nearest":
            out[n, :, i, j] = tap(n, int(np.floor(py + 0.5)), int(np.floor(px + 0.5)))
            continue
        y0, x0 = int(np.floor(py)), int(np.floor(px))
        fy, fx = py - y0, px - x0
        out[n, :, i, j] = (
            tap(n, y0, x0) * (1 - fy) * (1 - fx)
            + tap(n, y0, x0 + 1) * (1 - fy) * fx
            + tap(n, y0 + 1, x0) * fy * (1 - fx)
            + tap(n, y0 + 1, x0 + 1) * fy * fx
        )
    return out


@pytest.mark.parametrize("align", [True, False])
@pytest.mark.parametrize("mode", list(COORDS))
@pytest.mark.parametrize("padding", ["constant", "border", "reflection", "symmetric"])
@pytest.mark.parametrize("sampling", ["bilinear", "nearest"])
def test_resample_vs_numpy(sampling, padding, mode, align):
    from coremltools.converters.mil import Builder as mb

    coords = COORDS[mode].astype(np.float32)

    def prog(x, coordinates):
        return mb.resample(
            x=x,
            coordinates=coordinates,
            sampling_mode=sampling,
            padding_mode=padding,
            padding_value=1.75,
            coordinates_mode=mode,
            align_corners=align,
        )

    out = milprog.run(prog, {"x": X, "coordinates": coords}, target="iOS16", op="resample")
    expected = ref_resample(
        X.astype(np.float64), coords.astype(np.float64), sampling, padding, 1.75, mode, align
    )
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
