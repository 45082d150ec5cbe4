"""crop_resize and resample against the values coremltools' own op tests assert for the Core ML runtime
(``coremltools/converters/mil/mil/ops/tests/iOS1*/test_image_resizing.py``, run there on macOS), and
crop_resize over every sampling / box mode against an independent numpy reference of the MIL spec."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.interp import milprog

X16 = np.arange(1, 17, dtype=np.float32).reshape(1, 1, 4, 4)


# ------------------------------------------------------------------ crop_resize: runtime-verified values
def _crop_ios16(roi, h, w, normalized, mode="ALIGN_CORNERS", pad=0.0):
    from coremltools.converters.mil import Builder as mb

    def prog(x):
        return mb.crop_resize(
            x=x,
            roi=np.asarray(roi, np.float32).reshape(len(roi), 1, len(roi[0]), 1, 1),
            target_height=h,
            target_width=w,
            normalized_coordinates=normalized,
            box_coordinate_mode="CORNERS_HEIGHT_FIRST",
            sampling_mode=mode,
            pad_value=pad,
        )

    return milprog.run(prog, {"x": X16}, target="iOS16", op="crop_resize")


RUNTIME_CROPS = {  # roi, target h, w, normalized -> expected (coremltools iOS14 / iOS16 op tests)
    "2x2": ([[1, 1, 2, 2]], 2, 2, False, [6, 7, 10, 11]),
    "4x4": (
        [[1, 1, 2, 2]],
        4,
        4,
        False,
        [6, 19 / 3, 20 / 3, 7, 22 / 3, 23 / 3, 8, 25 / 3, 26 / 3, 9, 28 / 3, 29 / 3, 10, 31 / 3, 32 / 3, 11],
    ),
    "1x1_centre": ([[1, 1, 2, 2]], 1, 1, False, [8.5]),
    "normalized_with_index": ([[0, 0, 0, 1 / 3, 1 / 3]], 2, 2, True, [1, 2, 5, 6]),
    "inverted_box_flips": ([[2, 2, 1, 1]], 2, 2, False, [11, 10, 7, 6]),
}


@pytest.mark.parametrize("name", list(RUNTIME_CROPS))
def test_crop_resize_runtime_values(name):
    roi, h, w, normalized, expected = RUNTIME_CROPS[name]
    out = _crop_ios16(roi, h, w, normalized)
    np.testing.assert_allclose(out.ravel(), np.float32(expected), rtol=1e-5)


THREE_BOXES = [[0.1, 0.3, 1.3, 1.0], [0.5, 1.8, 1.0, 0.3], [0.0, 0.4, 0.6, 0.7]]
THREE_EXPECTED = [3.1, 5.2, "p", "p", "p", 7.899, "p", 13.9, 2.2, 3.1, 9.4, 10.3]  # "p": pad_value


@pytest.mark.parametrize("pad", [0.0, 10.0])
def test_crop_resize_inverted_and_outside_boxes_ios16(pad):
    roi = [[0, *b] for b in THREE_BOXES]
    out = _crop_ios16(roi, 2, 2, True, pad=pad)
    expected = [pad if v == "p" else v for v in THREE_EXPECTED]
    np.testing.assert_allclose(out.ravel(), np.float32(expected), atol=2e-3)  # 7.899 is given to 3 places


def test_crop_resize_inverted_and_outside_boxes_ios17():
    from coremltools.converters.mil import Builder as mb

    def prog(x):
        return mb.crop_resize(
            x=x,
            boxes=np.float32(THREE_BOXES),
            box_indices=np.zeros(3, np.int32),
            target_height=2,
            target_width=2,
            normalized_coordinates=True,
            sampling_mode="ALIGN_CORNERS",
            pad_value=10.0,
        )

    out = milprog.run(prog, {"x": X16}, target="iOS17", op="crop_resize")
    expected = [10.0 if v == "p" else v for v in THREE_EXPECTED]
    np.testing.assert_allclose(out.ravel(), np.float32(expected), atol=2e-3)  # 7.899 is given to 3 places


# ------------------------------------------------------------------ crop_resize: every mode vs numpy
def ref_box_grid(start: float, end: float, n: int, mode: str) -> np.ndarray:
    """Sample positions inside the box [start, end] (pixels; end < start flips), per resize_bilinear's
    sampling_mode table with the box as the input interval ``[0, X - 1]``, i.e. ``X - 1 = end - start``."""
    extent = end - start
    i = np.arange(n, dtype=np.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if n == 1:
            offsets = np.array([extent / 2 if mode == "ALIGN_CORNERS" else 0.0])
        else:
            offsets = i * extent / (n - 1)
    elif mode == "DEFAULT":
        offsets = i * (extent + 1) / n
    elif mode == "OFFSET_CORNERS":
        delta = max(1.0, extent) / n
        offsets = 0.5 * delta + i * delta
    else:  # UNALIGN_CORNERS
        offsets = (i + 0.5) * (extent + 1) / n - 0.5
    lo, hi = min(0.0, extent), max(0.0, extent)
    return start + np.clip(offsets, lo, hi)


def ref_sample(img: np.ndarray, ys: np.ndarray, xs: np.ndarray, pad: float) -> np.ndarray:
    """Bilinear samples of a [C, H, W] image at every (y, x) pair; points outside the image get ``pad``."""
    c, h, w = img.shape
    out = np.empty((c, len(ys), len(xs)))
    for a, y in enumerate(ys):
        for b, x in enumerate(xs):
            if not (0 <= y <= h - 1 and 0 <= x <= w - 1):
                out[:, a, b] = pad
                continue
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
            fy, fx = y - y0, x - x0
            top = img[:, y0, x0] * (1 - fx) + img[:, y0, x1] * fx
            bottom = img[:, y1, x0] * (1 - fx) + img[:, y1, x1] * fx
            out[:, a, b] = top * (1 - fy) + bottom * fy
    return out


def ref_corners(box, mode: str):
    """(h_start, w_start, h_end, w_end) from a box in ``box_coordinate_mode``."""
    a, b, c, d = box
    return {
        "CORNERS_HEIGHT_FIRST": (a, b, c, d),
        "CORNERS_WIDTH_FIRST": (b, a, d, c),
        "CENTER_SIZE_HEIGHT_FIRST": (a - c / 2, b - d / 2, a + c / 2, b + d / 2),
        "CENTER_SIZE_WIDTH_FIRST": (b - d / 2, a - c / 2, b + d / 2, a + c / 2),
    }[mode]


SAMPLING = ["STRICT_ALIGN_CORNERS", "ALIGN_CORNERS", "DEFAULT", "OFFSET_CORNERS", "UNALIGN_CORNERS"]
BOX_MODES = [
    "CORNERS_HEIGHT_FIRST",
    "CORNERS_WIDTH_FIRST",
    "CENTER_SIZE_HEIGHT_FIRST",
    "CENTER_SIZE_WIDTH_FIRST",
]
IMAGES = np.random.default_rng(1).standard_normal((2, 3, 7, 9)).astype(np.float32)
PIXEL_BOXES = np.float32([[1.0, 2.0, 5.5, 7.0], [4.0, 6.5, 0.5, 1.0], [2.0, 3.0, 3.0, 4.0]])


@pytest.mark.parametrize(
    "sampling,box_mode,normalized", list(itertools.product(SAMPLING, BOX_MODES, [False, True]))
)
def test_crop_resize_every_mode_vs_numpy(sampling, box_mode, normalized):
    from coremltools.converters.mil import Builder as mb

    h, w = IMAGES.shape[-2:]
    boxes = PIXEL_BOXES.copy()
    if normalized:  # the same boxes as fractions of (H - 1, W - 1), in the mode's axis order
        scale = np.float32([h - 1, w - 1, h - 1, w - 1] if "HEIGHT_FIRST" in box_mode else [w - 1, h - 1] * 2)
        boxes = boxes / scale
    indices = np.int32([1, 0, 1])

    def prog(x):
        return mb.crop_resize(
            x=x,
            boxes=boxes,
            box_indices=indices,
            target_height=4,
            target_width=3,
            normalized_coordinates=normalized,
            spatial_scale=1.0,
            box_coordinate_mode=box_mode,
            sampling_mode=sampling,
            pad_value=-2.5,
        )

    out = milprog.run(prog, {"x": IMAGES}, target="iOS17", op="crop_resize")
    expected = []
    for box, index in zip(boxes.astype(np.float64), indices):
        h0, w0, h1, w1 = ref_corners(box, box_mode)
        if normalized:
            h0, h1, w0, w1 = h0 * (h - 1), h1 * (h - 1), w0 * (w - 1), w1 * (w - 1)
        ys, xs = ref_box_grid(h0, h1, 4, sampling), ref_box_grid(w0, w1, 3, sampling)
        expected.append(ref_sample(IMAGES[index].astype(np.float64), ys, xs, -2.5))
    np.testing.assert_allclose(out, np.float32(expected), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ resample: runtime-verified values
RESAMPLE_X = np.float32([11.0, 22.0, 33.0, 44.0]).reshape(1, 1, 2, 2)
RESAMPLE_CASES = {  # mode args -> (expected with float coordinates, expected with int coordinates)
    "bilinear_constant_m1to1_align": (
        ("bilinear", "constant", 6.17, "normalized_minus_one_to_one", True),
        [8.585, 6.17, 27.5, 6.17],
        [27.5, 44.0, 27.5, 44.0],
    ),
    "nearest_border_unnormalized": (
        ("nearest", "border", -1.0, "unnormalized", False),
        [11.0, 11.0, 11.0, 44.0],
        [11.0, 44.0, 11.0, 44.0],
    ),
    "bilinear_reflection_0to1_align": (
        ("bilinear", "reflection", -1.0, "normalized_zero_to_one", True),
        [22.0, 36.3, 11.0, 34.1],
        [11.0, 44.0, 11.0, 44.0],
    ),
    "nearest_symmetric_0to1": (
        ("nearest", "symmetric", -1.0, "normalized_zero_to_one", False),
        [22.0, 33.0, 11.0, 33.0],
        [11.0, 44.0, 11.0, 44.0],
    ),
}


@pytest.mark.parametrize("coord_dtype", [np.float32, np.int32])
@pytest.mark.parametrize("name", list(RESAMPLE_CASES))
def test_resample_runtime_values(name, coord_dtype):
    from coremltools.converters.mil import Builder as mb

    (sampling, padding, value, coords_mode, align), float_expected, int_expected = RESAMPLE_CASES[name]
    if coord_dtype == np.float32:
        coords = np.float32([-1.0, -2.0, -3.7, -1.0, 0.0, 0.0, 3.5, 1.2]).reshape(1, 2, 2, 2)
        expected = float_expected
    else:
        coords = np.int32([0, 0, 1, 1, 0, 0, 1, 1]).reshape(1, 2, 2, 2)
        expected = int_expected

    def prog(x, coordinates):
        return mb.resample(
            x=x,
            coordinates=coordinates,
            sampling_mode=sampling,
            padding_mode=padding,
            padding_value=value,
            coordinates_mode=coords_mode,
            align_corners=align,
        )

    out = milprog.run(prog, {"x": RESAMPLE_X, "coordinates": coords}, target="iOS16", op="resample")
    np.testing.assert_allclose(out.ravel(), np.float32(expected), rtol=1e-4)
