"""Normalization, pooling, resize, attention and conv kernels: each against PyTorch (or a brute-force
reference / the MIL docs' own tables), then small torch models converted by coremltools and run end to end."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from devicefit import interp
from devicefit.interp.ops import attention, conv, normalization, pooling, resize, sampling
from tests.helpers import convert, rel_error

TOL = 1e-5


def close(actual: torch.Tensor, expected: torch.Tensor, tol: float = TOL) -> None:
    assert tuple(actual.shape) == tuple(expected.shape)
    assert rel_error(actual.numpy(), expected.numpy()) <= tol


def rand(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))


# ------------------------------------------------------------------------------------ normalization
@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 4, 6, 7), (2, 2, 3, 4, 5)])
def test_batch_norm(shape):
    x, c = rand(*shape), shape[1]
    mean, var, gamma, beta = rand(c), rand(c).abs() + 0.1, rand(c), rand(c) + 1
    expected = F.batch_norm(x, mean, var, gamma, beta, training=False, eps=1e-3)
    close(normalization.batch_norm(x, mean, var, gamma, beta, epsilon=1e-3), expected)
    close(normalization.batch_norm(x, mean, var), F.batch_norm(x, mean, var, training=False))


@pytest.mark.parametrize("shape", [(2, 3, 9), (1, 4, 6, 7)])
def test_instance_norm(shape):
    x, c = rand(*shape) * 3 + 1, shape[1]
    gamma, beta = rand(c), rand(c)
    close(normalization.instance_norm(x, gamma, beta, 1e-5), F.instance_norm(x, weight=gamma, bias=beta))


@pytest.mark.parametrize("shape,axes", [((2, 5, 8), [-1]), ((2, 3, 4, 5), [2, 3]), ((3, 4, 5), None)])
def test_layer_norm_trailing_axes(shape, axes):
    x = rand(*shape) * 2 + 0.5
    norm_shape = shape[-len(axes) :] if axes else shape
    gamma, beta = rand(*norm_shape), rand(*norm_shape)
    close(normalization.layer_norm(x, axes, gamma, beta, 1e-5), F.layer_norm(x, norm_shape, gamma, beta))
    close(normalization.layer_norm(x, axes), F.layer_norm(x, norm_shape))


def test_layer_norm_inner_axis_gamma_broadcasts_there():
    x = rand(2, 3, 4)
    gamma = rand(3)
    moved = x.transpose(1, 2)
    expected = F.layer_norm(moved, (3,), gamma).transpose(1, 2)
    close(normalization.layer_norm(x, [1], gamma), expected)


@pytest.mark.parametrize("shape", [(3, 4, 5), (2, 3, 4, 5), (2, 2, 2, 3, 3)])
def test_l2_norm_normalizes_last_three_axes(shape):
    x = rand(*shape)
    y = normalization.l2_norm(x, epsilon=0.0)
    flat = y.reshape(-1, int(np.prod(shape[-3:])))
    assert torch.allclose(flat.norm(dim=1), torch.ones(flat.shape[0]), atol=1e-6)
    close(y, F.normalize(x.reshape(flat.shape), dim=1).reshape(shape))


@pytest.mark.parametrize("size", [1, 3, 4, 5])
@pytest.mark.parametrize("shape", [(2, 7, 5), (1, 6, 4, 3)])
def test_local_response_norm(size, shape):
    x = rand(*shape)
    expected = F.local_response_norm(x, size, alpha=0.1, beta=0.6, k=2.0)
    close(normalization.local_response_norm(x, size, alpha=0.1, beta=0.6, k=2.0), expected)


# ------------------------------------------------------------------------------------------- pooling
POOLS = [  # (spatial shape, kernel, stride, pad per dim, ceil_mode)
    ((9,), (3,), (2,), (1,), False),
    ((10,), (4,), (3,), (0,), True),
    ((7, 8), (3, 3), (2, 2), (1, 1), True),
    ((6, 9), (2, 3), (2, 1), (0, 1), False),
    ((7, 7), (3, 2), (3, 2), (1, 1), True),
    ((5, 6, 7), (2, 3, 3), (2, 1, 2), (1, 0, 1), False),
]


@pytest.mark.parametrize("spatial,kernel,stride,pad,ceil", POOLS)
@pytest.mark.parametrize("include_pad", [True, False])
def test_avg_pool_vs_torch(spatial, kernel, stride, pad, ceil, include_pad):
    if ceil and len(spatial) == 3:
        pytest.skip("MIL ceil_mode is 1d/2d only")
    x = rand(2, 3, *spatial)
    ref = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[len(spatial)]
    expected = ref(x, kernel, stride, pad, ceil_mode=ceil, count_include_pad=include_pad)
    mil_pad = [p for p in pad for _ in range(2)]
    got = pooling.avg_pool(x, list(kernel), "custom", list(stride), mil_pad, ceil, not include_pad)
    close(got, expected)


@pytest.mark.parametrize("spatial,kernel,stride,pad,ceil", POOLS)
def test_max_pool_vs_torch(spatial, kernel, stride, pad, ceil):
    if ceil and len(spatial) == 3:
        pytest.skip("MIL ceil_mode is 1d/2d only")
    x = rand(1, 2, *spatial)
    ref = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[len(spatial)]
    expected = ref(x, kernel, stride, pad, ceil_mode=ceil)
    mil_pad = [p for p in pad for _ in range(2)]
    close(pooling.max_pool(x, list(kernel), "custom", list(stride), mil_pad, ceil), expected)


def _brute_pool_2d(x, k, s, pads, reduce):
    """Reference: loop over windows of the explicitly padded input (NaN marks padding)."""
    (pt, pb), (pl, pr) = pads
    xp = np.pad(x.numpy(), [(0, 0), (0, 0), (pt, pb), (pl, pr)], constant_values=np.nan)
    oh, ow = (xp.shape[2] - k[0]) // s[0] + 1, (xp.shape[3] - k[1]) // s[1] + 1
    out = np.zeros((*x.shape[:2], oh, ow), np.float32)
    for i, j in itertools.product(range(oh), range(ow)):
        win = xp[:, :, i * s[0] : i * s[0] + k[0], j * s[1] : j * s[1] + k[1]].reshape(*x.shape[:2], -1)
        out[:, :, i, j] = reduce(win)
    return torch.from_numpy(out)


@pytest.mark.parametrize("pad_type", ["same", "same_lower", "valid"])
@pytest.mark.parametrize("spatial,kernel,stride", [((7, 8), (2, 3), (2, 2)), ((5, 5), (4, 4), (1, 3))])
def test_same_padding_pools_vs_brute_force(pad_type, spatial, kernel, stride):
    x = rand(1, 2, *spatial)
    pads = (
        conv.same_pads(spatial, kernel, stride, [1, 1], pad_type == "same_lower")
        if pad_type != "valid"
        else [(0, 0), (0, 0)]
    )
    if pad_type == "same":  # the extra pad goes after (bottom/right) for same, before for same_lower
        assert all(a >= b for b, a in pads)
    avg_excl = _brute_pool_2d(x, kernel, stride, pads, lambda w: np.nanmean(w, -1))
    avg_incl = _brute_pool_2d(x, kernel, stride, pads, lambda w: np.nansum(w, -1) / w.shape[-1])
    mx = _brute_pool_2d(x, kernel, stride, pads, lambda w: np.nanmax(w, -1))
    l2 = _brute_pool_2d(x, kernel, stride, pads, lambda w: np.sqrt(np.nansum(w * w, -1)))
    k, s = list(kernel), list(stride)
    close(pooling.avg_pool(x, k, pad_type, s, exclude_padding_from_average=True), avg_excl)
    close(pooling.avg_pool(x, k, pad_type, s), avg_incl)
    close(pooling.max_pool(x, k, pad_type, s), mx)
    close(pooling.l2_pool(x, k, pad_type, s), l2)


def test_l2_pool_vs_lp_pool():
    x = rand(2, 3, 8, 9)
    close(pooling.l2_pool(x, [2, 3], "valid", [2, 3]), F.lp_pool2d(x, 2, (2, 3), (2, 3)))


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


# ----------------------------------------------------------------------------------------- attention
@pytest.mark.parametrize("mask", [None, "bool", "float"])
@pytest.mark.parametrize(
    "shape", [((2, 5, 8), (2, 7, 8), (2, 7, 4)), ((1, 2, 3, 4), (1, 2, 6, 4), (1, 2, 6, 5))]
)
def test_sdpa_vs_torch(mask, shape):
    (qs, ks, vs), (b_l, s) = shape, (shape[0][:-1], shape[1][-2])
    q, k, v = rand(*qs), rand(*ks) + 0.1, rand(*vs) - 0.2
    m = None
    if mask == "bool":
        m = rand(*b_l, s) > -0.5
        m[..., 0] = True  # every query keeps at least one key
    elif mask == "float":
        m = rand(*b_l[-1:], s)  # broadcasts over the batch dims
    close(attention.scaled_dot_product_attention(q, k, v, m), F.scaled_dot_product_attention(q, k, v, m))


# -------------------------------------------------------------------------------------------- conv
@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("pad_type", ["same", "same_lower"])
def test_conv_same_padding(n, pad_type):
    x, w = rand(1, 4, *[7] * n), rand(6, 2, *[4] * n)
    y = conv.conv(x, w, None, [1] * n, pad_type, None, [2] * n, groups=2)
    total = 3 * 2  # (k - 1) * dilation
    before = total // 2 if pad_type == "same" else total - total // 2
    padded = F.pad(x, [before, total - before] * n)
    close(y, {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[n](padded, w, None, 1, 0, 2, 2))


@pytest.mark.parametrize("stride,pad,out_pad", [(2, 1, 1), (3, 2, 2), (2, 0, 0), (1, 1, 0)])
def test_conv_transpose_custom_pad_and_output_shape(stride, pad, out_pad):
    x, w, b = rand(1, 4, 5, 6), rand(4, 3, 3, 3), rand(3)
    expected = F.conv_transpose2d(x, w, b, stride, pad, out_pad)
    got = conv.conv_transpose(x, w, b, [pad] * 4, list(expected.shape), "custom", [stride] * 2)
    close(got, expected)
    if out_pad == 0:
        close(conv.conv_transpose(x, w, b, [pad] * 4, None, "custom", [stride] * 2), expected)


@pytest.mark.parametrize("pad_type", ["same", "same_lower", "valid"])
def test_conv_transpose_1d_3d_groups_same(pad_type):
    x1, w1 = rand(2, 4, 5), rand(4, 3, 4)
    y1 = conv.conv_transpose(x1, w1, None, None, None, pad_type, [2], [1], 2)
    full = F.conv_transpose1d(x1, w1, None, 2, groups=2)
    if pad_type == "valid":
        close(y1, full)
    else:
        total = full.shape[-1] - 10
        start = total // 2 if pad_type == "same" else total - total // 2
        close(y1, full[..., start : start + 10])
    x3, w3 = rand(1, 2, 3, 4, 3), rand(2, 2, 2, 3, 2)
    close(conv.conv_transpose(x3, w3, strides=[1, 2, 1]), F.conv_transpose3d(x3, w3, stride=(1, 2, 1)))


# ----------------------------------------------------------------------------------------- end to end
class Interp(torch.nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.kwargs = kwargs

    def forward(self, x):
        return F.interpolate(x, **self.kwargs)


class SDPA(torch.nn.Module):
    def __init__(self, mask: torch.Tensor | None = None):
        super().__init__()
        self.mask = mask

    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask)


def _bn():
    m = torch.nn.BatchNorm2d(4)
    m.running_mean.uniform_(-1, 1)
    m.running_var.uniform_(0.5, 2)
    m.weight.data.uniform_(0.5, 1.5)
    m.bias.data.uniform_(-1, 1)
    return m


X = (1, 4, 10, 11)
MODELS = {
    "batchnorm": (_bn, X),
    "instancenorm": (lambda: torch.nn.InstanceNorm2d(4, affine=True), X),
    "groupnorm": (lambda: torch.nn.GroupNorm(2, 4), X),
    "layernorm": (lambda: torch.nn.LayerNorm([10, 11]), X),
    "avgpool_ceil_nopad": (lambda: torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), X),
    "avgpool_ceil_pad": (lambda: torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True), X),
    "avgpool1d": (lambda: torch.nn.AvgPool1d(3, 2, 1, count_include_pad=False), (1, 3, 12)),
    "maxpool_ceil": (lambda: torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True), X),
    "maxpool3d": (lambda: torch.nn.MaxPool3d(2, (1, 2, 2)), (1, 2, 4, 6, 6)),
    "adaptive_avg": (lambda: torch.nn.AdaptiveAvgPool2d((5, 1)), X),
    "bilinear_ac": (lambda: Interp(size=(17, 9), mode="bilinear", align_corners=True), X),
    "bilinear": (lambda: Interp(size=(17, 9), mode="bilinear", align_corners=False), X),
    "bilinear_x2": (lambda: Interp(scale_factor=2, mode="bilinear", align_corners=False), X),
    "nearest_x2": (lambda: Interp(scale_factor=2, mode="nearest"), X),
    "nearest_size": (lambda: Interp(size=(15, 22), mode="nearest"), X),
    "upsample": (lambda: torch.nn.Upsample(scale_factor=3, mode="bilinear", align_corners=True), X),
    "conv_transpose": (lambda: torch.nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1), X),
    "conv1d": (lambda: torch.nn.Conv1d(3, 5, 3, stride=2, padding=2, dilation=2), (1, 3, 16)),
    "conv3d": (lambda: torch.nn.Conv3d(2, 3, (2, 3, 3), padding=(1, 0, 1)), (1, 2, 4, 6, 6)),
    "depthwise_dilated": (lambda: torch.nn.Conv2d(4, 8, 3, padding=2, dilation=2, groups=4), X),
}
FAST_IOS18 = ["layernorm", "avgpool_ceil_nopad", "conv_transpose"]


def _run_e2e(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], target: str) -> None:
    model = model.eval()
    mlmodel = convert(model, inputs, target=target)
    prog = interp.load(mlmodel)
    feeds = {spec.name: t.numpy() for spec, t in zip(prog.inputs, inputs)}
    out = prog.run(feeds, strict=True)
    with torch.no_grad():
        expected = model(*inputs).numpy()
    (got,) = out.values()
    assert got.shape == expected.shape
    assert rel_error(got, expected) <= TOL, rel_error(got, expected)


@pytest.mark.parametrize(
    "name,target",
    [(n, "iOS16") for n in MODELS] + [(n, "iOS18") for n in FAST_IOS18],
)
def test_end_to_end(name, target):
    torch.manual_seed(0)
    make, shape = MODELS[name]
    _run_e2e(make(), (torch.randn(*shape),), target)


@pytest.mark.parametrize("mask", [None, "bool", "float"])
def test_end_to_end_sdpa_ios18(mask):
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 2, 5, 8), torch.randn(1, 2, 7, 8), torch.randn(1, 2, 7, 6)
    m = None
    if mask == "bool":
        m = torch.rand(5, 7) > 0.3
        m[:, 0] = True
    elif mask == "float":
        m = torch.randn(1, 1, 5, 7)
    model = SDPA(m)
    mlmodel = convert(model, (q, k, v), target="iOS18")
    prog = interp.load(mlmodel)
    assert prog.op_counts.get("scaled_dot_product_attention") == 1
    out = prog.run({"x0": q.numpy(), "x1": k.numpy(), "x2": v.numpy()}, strict=True)
    (got,) = out.values()
    assert rel_error(got, model(q, k, v).numpy()) <= TOL


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


# ------------------------------------------------------- MIL-built programs (ops torch never emits)
def _mil_program(build, shape: tuple[int, ...], target: str):
    """Convert a one-input pymil program built by ``build(mb, x)``; returns the loaded interp Program."""
    from coremltools.converters.mil import Builder as mb

    from devicefit._lazy import coremltools

    ct = coremltools()
    opset = getattr(ct.target, target)

    @mb.program(input_specs=[mb.TensorSpec(shape=shape)], opset_version=opset)
    def prog(x):
        return build(mb, x)

    mlmodel = ct.convert(
        prog,
        convert_to="mlprogram",
        minimum_deployment_target=opset,
        compute_precision=ct.precision.FLOAT32,
    )
    return interp.load(mlmodel)


def _run_one(prog, x: torch.Tensor) -> torch.Tensor:
    (out,) = prog.run({prog.inputs[0].name: x.numpy()}, strict=True).values()
    return torch.from_numpy(np.asarray(out))


X4 = (1, 3, 6, 7)
MIL_CASES = {  # name: (target, build, torch reference of x)
    "resize_bilinear_strict": (
        "iOS16",
        lambda mb, x: mb.resize_bilinear(
            x=x, target_size_height=9, target_size_width=4, sampling_mode="STRICT_ALIGN_CORNERS"
        ),
        lambda x: F.interpolate(x, size=(9, 4), mode="bilinear", align_corners=True),
    ),
    "resize_bilinear_unalign": (
        "iOS16",
        lambda mb, x: mb.resize_bilinear(
            x=x, target_size_height=11, target_size_width=5, sampling_mode="UNALIGN_CORNERS"
        ),
        lambda x: F.interpolate(x, size=(11, 5), mode="bilinear", align_corners=False),
    ),
    "resize_nearest": (
        "iOS16",
        lambda mb, x: mb.resize_nearest_neighbor(x=x, target_size_height=9, target_size_width=5),
        lambda x: F.interpolate(x, size=(9, 5), mode="nearest-exact"),
    ),
    "resize_ios17": (
        "iOS17",
        lambda mb, x: mb.resize(x=x, shape=np.array([12, 0], np.int32), resized_dims=np.uint32(2)),
        lambda x: resize._bilinear(x, 12, 7, "DEFAULT"),
    ),
    "upsample_half_pixel_off": (
        "iOS16",
        lambda mb, x: mb.upsample_bilinear(
            x=x, scale_factor_height=2, scale_factor_width=3, align_corners=False, half_pixel_centers=False
        ),
        lambda x: resize._bilinear(x, 12, 21, "DEFAULT"),
    ),
    "crop_resize_ios16": (
        "iOS16",
        lambda mb, x: mb.crop_resize(
            x=x,
            roi=np.array([0, 1, 2, 4, 6], np.float32).reshape(1, 1, 5, 1, 1),
            target_height=4,
            target_width=5,
            sampling_mode="ALIGN_CORNERS",
        ),
        lambda x: x[:, :, 1:5, 2:7].unsqueeze(0),
    ),
    "crop_resize_ios17": (
        "iOS17",
        lambda mb, x: mb.crop_resize(
            x=x,
            boxes=np.array([[0.0, 0.0, 1.0, 1.0]], np.float32),
            target_height=6,
            target_width=7,
            normalized_coordinates=True,
            sampling_mode="ALIGN_CORNERS",
        ),
        lambda x: x,
    ),
    "l2_norm": (
        "iOS16",
        lambda mb, x: mb.l2_norm(x=x, epsilon=0.0),
        lambda x: x / x.norm(),
    ),
    "lrn": (
        "iOS16",
        lambda mb, x: mb.local_response_norm(x=x, size=3, alpha=0.5, beta=0.7, k=1.5),
        lambda x: F.local_response_norm(x, 3, alpha=0.5, beta=0.7, k=1.5),
    ),
    "l2_pool": (
        "iOS16",
        lambda mb, x: mb.l2_pool(x=x, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid"),
        lambda x: F.lp_pool2d(x, 2, 2, 2),
    ),
    "avg_pool_same": (
        "iOS16",
        lambda mb, x: mb.avg_pool(
            x=x, kernel_sizes=[3, 3], strides=[1, 1], pad_type="same", exclude_padding_from_average=True
        ),
        lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False),
    ),
    "conv_transpose_output_shape": (
        "iOS16",
        lambda mb, x: mb.conv_transpose(
            x=x,
            weight=np.ones((3, 2, 3, 3), np.float32),
            strides=[2, 2],
            pad_type="custom",
            pad=[1, 1, 1, 1],
            output_shape=[1, 2, 12, 14],
        ),
        lambda x: F.conv_transpose2d(x, torch.ones(3, 2, 3, 3), None, 2, 1, 1),
    ),
}


@pytest.mark.parametrize("name", list(MIL_CASES))
def test_mil_built_programs(name):
    target, build, reference = MIL_CASES[name]
    prog = _mil_program(build, X4, target)
    x = rand(*X4)
    close(_run_one(prog, x), reference(x))


@pytest.mark.parametrize("name", ["avgpool_ceil_nopad", "bilinear"])
def test_end_to_end_fp16_models_run_in_fp16(name):
    torch.manual_seed(0)
    make, shape = MODELS[name]
    model, x = make().eval(), torch.randn(*shape)
    prog = interp.load(convert(model, x, target="iOS16", precision="fp16"))
    (got,) = prog.run({"x": x.numpy()}, precision="fp16", strict=True).values()
    assert got.dtype == np.float16
    with torch.no_grad():
        err = rel_error(got, model(x).numpy())
    assert 0 < err <= 1e-2
