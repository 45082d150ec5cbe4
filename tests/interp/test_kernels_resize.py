"""Resize and sampling kernels (resize_*, upsample_*, crop, crop_resize, affine, resample) against PyTorch,
brute-force references or the MIL docs' own tables; converted grid_sample / affine models end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from devicefit import interp
from devicefit.interp.ops import resize, sampling
from tests.helpers import convert, rel_error
from tests.interp.nn_helpers import TOL, close, rand

# -------------------------------------------------------------------------------------------- resize
# The MIL docs' own grid tables for X_in = 2 (resize_bilinear / upsample_bilinear docstrings).
DOC_GRIDS = {
    ("UNALIGN_CORNERS", 5): [0.0, 0.1, 0.5, 0.9, 1.0],
    ("STRICT_ALIGN_CORNERS", 5): [0.0, 0.25, 0.5, 0.75, 1.0],
    ("ALIGN_CORNERS", 5): [0.0, 0.25, 0.5, 0.75, 1.0],
    ("DEFAULT", 5): [0.0, 0.4, 0.8, 1.0, 1.0],
    ("OFFSET_CORNERS", 5): [0.1, 0.3, 0.5, 0.7, 0.9],
    ("UNALIGN_CORNERS", 6): [0.0, 0.0, 0.33, 0.67, 1.0, 1.0],
    ("STRICT_ALIGN_CORNERS", 6): [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
    ("DEFAULT", 6): [0.0, 0.33, 0.67, 1.0, 1.0, 1.0],
    ("OFFSET_CORNERS", 6): [0.08, 0.25, 0.42, 0.58, 0.75, 0.92],
}


@pytest.mark.parametrize("mode,out", list(DOC_GRIDS))
def test_sampling_grid_matches_mil_docs(mode, out):
    got = resize._grid(2, out, mode)
    assert np.allclose(got.numpy(), DOC_GRIDS[mode, out], atol=6e-3)
    # and resizing the 1-D ramp [0, 1] samples exactly those coordinates
    ramp = torch.tensor([[[0.0, 1.0]]])
    assert np.allclose(resize.resize_bilinear(ramp, 1, out, mode)[0, 0].numpy(), got.numpy(), atol=1e-6)


def test_align_corners_single_output_takes_the_middle():
    assert resize._grid(5, 1, "ALIGN_CORNERS").tolist() == [2.0]
    assert resize._grid(5, 1, "STRICT_ALIGN_CORNERS").tolist() == [0.0]


SIZES = [((4, 5), (8, 10)), ((5, 4), (7, 9)), ((6, 8), (3, 5)), ((3, 3), (3, 7))]


@pytest.mark.parametrize("size_in,size_out", SIZES)
@pytest.mark.parametrize("align", [True, False])
def test_resize_bilinear_vs_torch(size_in, size_out, align):
    x = rand(2, 3, *size_in)
    expected = F.interpolate(x, size=size_out, mode="bilinear", align_corners=align)
    mode = "STRICT_ALIGN_CORNERS" if align else "UNALIGN_CORNERS"
    close(resize.resize_bilinear(x, *size_out, mode), expected)
    shape = torch.tensor([0, 0, *size_out], dtype=torch.int32)
    close(resize.resize(x, shape.tolist(), 2, "LINEAR", mode), expected)


@pytest.mark.parametrize("size_in,scale", [((4, 5), (2, 2)), ((5, 3), (3, 1)), ((4, 6), (1.5, 2.5))])
@pytest.mark.parametrize("align", [True, False])
def test_upsample_bilinear_vs_torch(size_in, scale, align):
    x = rand(1, 2, *size_in)
    size_out = tuple(int(s * f) for s, f in zip(size_in, scale))
    expected = F.interpolate(x, size=size_out, mode="bilinear", align_corners=align)
    close(resize.upsample_bilinear(x, *scale, align_corners=align), expected)
    close(resize.upsample_bilinear_ios16(x, *scale, align_corners=align), expected)


def test_upsample_bilinear_ios16_legacy_half_pixel_off():
    x = rand(1, 1, 3, 4)
    got = resize.upsample_bilinear_ios16(x, 2, 2, align_corners=False, half_pixel_centers=False)
    close(got, resize.resize_bilinear(x, 6, 8, "DEFAULT"))
    # TF legacy: source = i * in / out, so even outputs hit input pixels exactly
    close(got[..., ::2, ::2], x)


@pytest.mark.parametrize("size_in,size_out", SIZES)
def test_nearest_vs_torch(size_in, size_out):
    x = rand(1, 2, *size_in)
    scale = [o / i for o, i in zip(size_out, size_in)]
    if all(float(s).is_integer() for s in scale):
        close(resize.upsample_nearest_neighbor(x, *scale), F.interpolate(x, size=size_out, mode="nearest"))
    close(
        resize.resize_nearest_neighbor(x, *size_out),
        F.interpolate(x, size=size_out, mode="nearest-exact"),
    )
    close(
        resize.resize(x, list(size_out), 2, "NEAREST_NEIGHBOR"),
        F.interpolate(x, size=size_out, mode="nearest-exact"),
    )


def test_upsample_nearest_fractional_scale_uses_output_size():
    x = rand(1, 1, 5, 4)
    got = resize.upsample_nearest_neighbor(x, 1.40002, 2.5)  # what the converter writes for size 7 x 10
    close(got, F.interpolate(x, size=(7, 10), mode="nearest"))


def test_resize_keeps_axes_given_zero_and_casts_ints_back():
    x = torch.arange(24, dtype=torch.int32).reshape(1, 2, 3, 4)
    y = resize.resize(x, [0, 6], 2, "NEAREST_NEIGHBOR")
    assert y.dtype == torch.int32 and tuple(y.shape) == (1, 2, 3, 6)
    assert torch.equal(y[..., ::3], x[..., ::2])


def test_crop():
    x = rand(2, 3, 7, 9)
    assert torch.equal(resize.crop(x, [1, 2], [0, 3]), x[..., 1:5, 0:6])


def test_crop_resize_align_corners_extracts_patches():
    x = rand(2, 3, 6, 7)
    boxes = torch.tensor([[1.0, 2.0, 3.0, 5.0], [0.0, 0.0, 5.0, 6.0]])
    got = sampling.crop_resize_ios17(x, boxes, [1, 0], 3, 4, sampling_mode="ALIGN_CORNERS")
    close(got[0], x[1, :, 1:4, 2:6])
    close(got[1], F.interpolate(x[:1], size=(3, 4), mode="bilinear", align_corners=True)[0])


def test_crop_resize_normalized_center_size_and_pad_value():
    x = rand(1, 2, 5, 5)
    # a box centred on the image, half its extent, in normalized [0, 1] centre-size form
    boxes = torch.tensor([[0.5, 0.5, 0.5, 0.5]])
    got = sampling.crop_resize_ios17(
        x, boxes, None, 3, 3, True, 1.0, "CENTER_SIZE_WIDTH_FIRST", "STRICT_ALIGN_CORNERS"
    )
    close(got[0], x[0, :, 1:4, 1:4])
    # a box that reaches past the image: samples outside get pad_value
    far = torch.tensor([[2.0, 2.0, 6.0, 6.0]])
    out = sampling.crop_resize_ios17(x, far, None, 5, 5, sampling_mode="STRICT_ALIGN_CORNERS", pad_value=-7.0)
    close(out[0, :, :3, :3], x[0, :, 2:, 2:])
    assert (out[0, :, 3:, :] == -7).all() and (out[0, :, :, 3:] == -7).all()


def test_crop_resize_ios15_roi_layouts():
    x = rand(2, 3, 6, 6)
    roi4 = torch.tensor([1.0, 1.0, 4.0, 4.0]).reshape(1, 1, 4, 1, 1)
    out = sampling.crop_resize(x, roi4, 4, 4, sampling_mode="ALIGN_CORNERS")
    assert tuple(out.shape) == (1, 2, 3, 4, 4)
    close(out[0], x[:, :, 1:5, 1:5])
    roi5 = torch.tensor([1.0, 0.0, 0.0, 2.0, 2.0]).reshape(1, 1, 5, 1, 1)
    out5 = sampling.crop_resize(x, roi5, 3, 3, sampling_mode="ALIGN_CORNERS")
    assert tuple(out5.shape) == (1, 1, 3, 3, 3)
    close(out5[0, 0], x[1, :, :3, :3])


def test_affine_identity_and_shift():
    x = rand(2, 3, 5, 6)
    identity = torch.tensor([[1.0, 0, 0, 0, 1, 0]])
    close(sampling.affine(x, identity, 5, 6, align_corners=True), x)
    theta = torch.tensor([[0.5, 0.1, 0.2, -0.1, 0.8, 0.0], [1.0, 0, 0, 0, 1, 0]])
    grid = F.affine_grid(theta.reshape(2, 2, 3), [2, 3, 4, 4], align_corners=False)
    close(sampling.affine(x, theta, 4, 4, align_corners=False), F.grid_sample(x, grid, align_corners=False))


# ------------------------------------------------------------------------------------------ resample
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align", [True, False])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_resample_vs_grid_sample(padding, align, mode):
    x, grid = rand(2, 3, 5, 6), rand(2, 4, 7, 2) * 0.8  # some points fall outside [-1, 1]
    expected = F.grid_sample(x, grid, mode=mode, padding_mode=padding, align_corners=align)
    # the torch converter's mapping: reflection without align_corners is MIL's "symmetric"
    mil_padding = {"zeros": "constant", "border": "border", "reflection": "reflection"}[padding]
    if padding == "reflection" and not align:
        mil_padding = "symmetric"
    got = sampling.resample(x, grid, mode, mil_padding, 0.0, "normalized_minus_one_to_one", align)
    close(got, expected)


def test_resample_coordinate_modes_and_pad_value():
    x = rand(1, 2, 4, 5)
    ys, xs = torch.meshgrid(torch.arange(4.0), torch.arange(5.0), indexing="ij")
    pixels = torch.stack([xs, ys], -1)[None]  # (x, y) at every pixel centre: the identity
    close(sampling.resample(x, pixels, "bilinear", "constant", 0.0, "unnormalized", True), x)
    unit = pixels / torch.tensor([4.0, 3.0])
    close(sampling.resample(x, unit, "bilinear", "constant", 0.0, "normalized_zero_to_one", True), x)
    outside = torch.full((1, 2, 2, 2), 5.0)
    out = sampling.resample(x, outside, "bilinear", "constant", 3.5, "normalized_minus_one_to_one", True)
    assert torch.equal(out, torch.full_like(out, 3.5))


class GridSample(torch.nn.Module):
    def forward(self, x, grid):
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


class AffineSample(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.tensor([[[0.9, 0.1, 0.05], [-0.2, 1.1, 0.1]]]))

    def forward(self, x):
        grid = F.affine_grid(self.theta, [1, 3, 6, 7], align_corners=True)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def test_end_to_end_grid_sample_and_affine():
    torch.manual_seed(0)
    x, grid = torch.randn(1, 3, 5, 6), torch.rand(1, 4, 4, 2) * 2.4 - 1.2
    model = GridSample()
    prog = interp.load(convert(model, (x, grid), target="iOS16"))
    assert prog.op_counts.get("resample") == 1
    (got,) = prog.run({"x0": x.numpy(), "x1": grid.numpy()}, strict=True).values()
    assert rel_error(got, model(x, grid).numpy()) <= TOL
    affine_model = AffineSample()
    prog = interp.load(convert(affine_model, x, target="iOS16"))
    assert prog.op_counts.get("affine") == 1
    (got,) = prog.run({"x": x.numpy()}, strict=True).values()
    assert rel_error(got, affine_model(x).detach().numpy()) <= TOL
