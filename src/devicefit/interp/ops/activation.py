"""Activation ops (MIL ``activation``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from devicefit.interp.registry import float_, int_, register, str_


@register("relu")
def relu(x):
    return torch.relu(x)


@register("relu6")
def relu6(x):
    return torch.clamp(x, 0.0, 6.0)


@register("sigmoid")
def sigmoid(x):
    return torch.sigmoid(x)


@register("sigmoid_hard", attrs={"alpha": float_, "beta": float_})
def sigmoid_hard(x, alpha=0.2, beta=0.5):
    # one allocation: scale, then shift and clip in place
    return (x * alpha).add_(beta).clamp_(0.0, 1.0)


@register("silu")
def silu(x):
    return F.silu(x)


@register("gelu", attrs={"mode": str_})
def gelu(x, mode="EXACT"):
    if mode == "EXACT":
        return F.gelu(x)
    if mode == "TANH_APPROXIMATION":
        return F.gelu(x, approximate="tanh")
    if mode == "SIGMOID_APPROXIMATION":
        return x * torch.sigmoid(1.702 * x)
    raise ValueError(f"gelu: unknown mode {mode!r}")


@register("leaky_relu", attrs={"alpha": float_})
def leaky_relu(x, alpha=0.01):
    return F.leaky_relu(x, alpha)


@register("elu", attrs={"alpha": float_})
def elu(x, alpha=1.0):
    return F.elu(x, alpha)


@register("prelu")
def prelu(x, alpha):
    # alpha has one value per channel (axis 1 of a rank >= 3 input)
    shape = [1, -1] + [1] * (x.dim() - 2)
    return torch.where(x >= 0, x, x * alpha.reshape(shape))


@register("softplus")
def softplus(x):
    return F.softplus(x)


@register("softplus_parametric")
def softplus_parametric(x, alpha, beta):
    shape = [1, -1] + [1] * (x.dim() - 2)
    return alpha.reshape(shape) * F.softplus(beta.reshape(shape) * x)


@register("softsign")
def softsign(x):
    return F.softsign(x)


@register("scaled_tanh", attrs={"alpha": float_, "beta": float_})
def scaled_tanh(x, alpha=1.0, beta=1.0):
    return alpha * torch.tanh(beta * x)


@register("linear_activation", attrs={"alpha": float_, "beta": float_})
def linear_activation(x, alpha=1.0, beta=0.0):
    return alpha * x + beta


@register("thresholded_relu", attrs={"alpha": float_})
def thresholded_relu(x, alpha=1.0):
    # F.threshold(x, t, v) is x where x > t, else v: exactly MIL's thresholded_relu with v = 0
    return F.threshold(x, alpha, 0.0)


@register("clamped_relu", attrs={"alpha": float_, "beta": float_})
def clamped_relu(x, alpha=0.0, beta=6.0):
    return torch.clamp(torch.where(x >= 0, x, alpha * x), max=beta)


@register("softmax", attrs={"axis": int_})
def softmax(x, axis=-1):
    return torch.softmax(x, dim=axis)
