"""Elementwise binary and unary ops (MIL ``elementwise_binary`` / ``elementwise_unary``)."""

from __future__ import annotations

import torch

from devicefit.interp.registry import float_, register


@register("add")
def add(x, y):
    return x + y


@register("sub")
def sub(x, y):
    return x - y


@register("mul")
def mul(x, y):
    return x * y


@register("real_div")
def real_div(x, y):
    if not x.is_floating_point() and not y.is_floating_point():
        # integer real_div truncates toward zero, as coremltools' own constant folding computes it
        # (true division, then a cast to int32); floor_div is the op that floors.
        return torch.div(x, y, rounding_mode="trunc").to(x.dtype)
    return x / y


@register("floor_div")
def floor_div(x, y):
    out = torch.div(x, y, rounding_mode="floor")
    return out


@register("mod")
def mod(x, y):
    return torch.remainder(x, y)


@register("pow")
def pow_(x, y):
    if y.dim() == 0 and x.is_floating_point():
        # a scalar exponent (x ** 2 in RMS norms): torch's scalar overload is much cheaper than the
        # tensor-exponent broadcast; squaring as a product is exact like pow(x, 2).
        e = y.item()
        return x * x if e == 2.0 else torch.pow(x, e)
    return torch.pow(x, y)


@register("maximum")
def maximum(x, y):
    return torch.maximum(x, y.to(x.dtype) if x.dtype != y.dtype else y)


@register("minimum")
def minimum(x, y):
    return torch.minimum(x, y.to(x.dtype) if x.dtype != y.dtype else y)


@register("equal")
def equal(x, y):
    return x == y


@register("not_equal")
def not_equal(x, y):
    return x != y


@register("less")
def less(x, y):
    return x < y


@register("less_equal")
def less_equal(x, y):
    return x <= y


@register("greater")
def greater(x, y):
    return x > y


@register("greater_equal")
def greater_equal(x, y):
    return x >= y


@register("logical_and")
def logical_and(x, y):
    return torch.logical_and(x, y)


@register("logical_or")
def logical_or(x, y):
    return torch.logical_or(x, y)


@register("logical_xor")
def logical_xor(x, y):
    return torch.logical_xor(x, y)


@register("logical_not")
def logical_not(x):
    return torch.logical_not(x)


# ------------------------------------------------------------------ unary
@register("abs")
def abs_(x):
    return torch.abs(x)


@register("sqrt")
def sqrt(x):
    return torch.sqrt(x)


@register("rsqrt", attrs={"epsilon": float_})
def rsqrt(x, epsilon=1e-12):
    return torch.rsqrt(x + epsilon)


@register("inverse", attrs={"epsilon": float_})
def inverse(x, epsilon=1e-4):
    return 1.0 / (x + epsilon)


@register("exp")
def exp(x):
    return torch.exp(x)


@register("exp2")
def exp2(x):
    # T includes int32: the result stays an integer (torch.exp2 would promote it to float).
    return torch.exp2(x) if x.is_floating_point() else torch.exp2(x.to(torch.float64)).to(x.dtype)


@register("log", attrs={"epsilon": float_})
def log(x, epsilon=1e-45):
    return torch.log(x + epsilon)


@register("square")
def square(x):
    return x * x


@register("sign")
def sign(x):
    return torch.sign(x)


@register("floor")
def floor(x):
    return torch.floor(x)


@register("ceil")
def ceil(x):
    return torch.ceil(x)


@register("round")
def round_(x):
    return torch.round(x)


@register("sin")
def sin(x):
    return torch.sin(x)


@register("cos")
def cos(x):
    return torch.cos(x)


@register("tan")
def tan(x):
    return torch.tan(x)


@register("asin")
def asin(x):
    return torch.asin(x)


@register("acos")
def acos(x):
    return torch.acos(x)


@register("atan")
def atan(x):
    return torch.atan(x)


@register("sinh")
def sinh(x):
    return torch.sinh(x)


@register("cosh")
def cosh(x):
    return torch.cosh(x)


@register("tanh")
def tanh(x):
    return torch.tanh(x)


@register("atanh")
def atanh(x):
    return torch.atanh(x)


@register("erf")
def erf(x):
    return torch.erf(x)


@register("threshold", attrs={"alpha": float_})
def threshold(x, alpha):
    # alpha has x's type T (int32 included); a float bound would promote an int x to float.
    return torch.clamp_min(x, alpha if x.is_floating_point() else int(alpha))


@register("clip", attrs={"alpha": float_, "beta": float_})
def clip(x, alpha, beta):
    return torch.clamp(x, alpha, beta)
