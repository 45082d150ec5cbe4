"""Normalization, pooling, attention and conv kernels, each against PyTorch or a brute-force reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from devicefit.interp.ops import attention, conv, normalization, pooling
from tests.interp.nn_helpers import close, rand


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
