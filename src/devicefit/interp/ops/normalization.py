"""Normalization: batch_norm, instance_norm, layer_norm, l2_norm, local_response_norm.

All statistics are biased (divide by N), as in MIL's value_inference and in PyTorch's eval-mode norms.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from devicefit.interp.ops._util import norm_axes
from devicefit.interp.registry import float_, int_, ints, register

# Fast variants (fused torch kernels) are used where they compute the same thing; set False to run only
# the reference formulas. tests/interp/test_fast_paths.py checks both agree.
FAST = True


def _per_channel(v: torch.Tensor | None, rank: int) -> torch.Tensor | None:
    """A [C] vector shaped to broadcast along axis 1 of a rank-``rank`` tensor."""
    return None if v is None else v.reshape([1, -1] + [1] * (rank - 2))


def _affine(y: torch.Tensor, gamma: torch.Tensor | None, beta: torch.Tensor | None) -> torch.Tensor:
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return y


@register("batch_norm", attrs={"epsilon": float_})
def batch_norm(x, mean, variance, gamma=None, beta=None, epsilon=1e-5):
    if FAST and x.is_floating_point() and x.dim() >= 2:
        return F.batch_norm(x, mean, variance, gamma, beta, training=False, eps=epsilon)
    return batch_norm_reference(x, mean, variance, gamma, beta, epsilon)


def batch_norm_reference(x, mean, variance, gamma=None, beta=None, epsilon=1e-5):
    """The spec: (x - mean) / sqrt(variance + epsilon) * gamma + beta, per channel (axis 1)."""
    r = x.dim()
    y = (x - _per_channel(mean, r)) / torch.sqrt(_per_channel(variance, r) + epsilon)
    return _affine(y, _per_channel(gamma, r), _per_channel(beta, r))


@register("instance_norm", attrs={"epsilon": float_})
def instance_norm(x, gamma=None, beta=None, epsilon=1e-5):
    # NOTE: F.instance_norm is a training-mode batch norm: it raises on one spatial element, where the spec's
    # result is beta (mean = the value, variance 0)
    if FAST and x.is_floating_point() and x.dim() >= 3 and x[0, 0].numel() > 1:
        return F.instance_norm(x, weight=gamma, bias=beta, eps=epsilon)
    return instance_norm_reference(x, gamma, beta, epsilon)


def instance_norm_reference(x, gamma=None, beta=None, epsilon=1e-5):
    """The spec: per sample and channel, normalise over the spatial axes (biased variance)."""
    dims = list(range(2, x.dim()))
    mean = x.mean(dim=dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
    y = (x - mean) / torch.sqrt(var + epsilon)
    return _affine(y, _per_channel(gamma, x.dim()), _per_channel(beta, x.dim()))


@register("layer_norm", attrs={"axes": ints, "epsilon": float_})
def layer_norm(x, axes=None, gamma=None, beta=None, epsilon=1e-5):
    dims = sorted(norm_axes(axes, x.dim()))
    if FAST and dims and dims == list(range(x.dim() - len(dims), x.dim())) and x.is_floating_point():
        # trailing axes: torch's fused kernel computes the same biased statistics in one pass
        return F.layer_norm(x, x.shape[dims[0] :], gamma, beta, epsilon)
    return layer_norm_reference(x, dims, gamma, beta, epsilon)


def layer_norm_reference(x, dims, gamma, beta, epsilon):
    """The spec: normalise over ``dims`` (any axes) with biased variance, then scale and shift."""
    mean = x.mean(dim=dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
    y = (x - mean) / torch.sqrt(var + epsilon)
    # gamma / beta have shape x.shape[axes] (axes in increasing order); put 1s at the other axes.
    shape = [x.shape[i] if i in dims else 1 for i in range(x.dim())]
    return _affine(
        y,
        None if gamma is None else gamma.reshape(shape),
        None if beta is None else beta.reshape(shape),
    )


@register("l2_norm", attrs={"epsilon": float_})
def l2_norm(x, epsilon=1e-6):
    # The last three axes are normalized together; any leading axes are batch.
    square_sum = (x * x).sum(dim=(-3, -2, -1), keepdim=True)
    return x / torch.sqrt(square_sum + epsilon)


@register("local_response_norm", attrs={"size": int_, "alpha": float_, "beta": float_, "k": float_})
def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    # NOTE: window over channels [c - size//2, c + (size-1)//2], divisor always ``size`` (PyTorch's
    # convention; identical to TF's depth_radius form, where size is always odd).
    sq = (x * x).unsqueeze(1)
    pad = [0, 0] * (x.dim() - 2) + [size // 2, (size - 1) // 2]
    window_sum = F.pad(sq, pad).unfold(2, size, 1).sum(-1).squeeze(1)
    return x / (k + alpha / size * window_sum) ** beta
