"""Dense linear algebra: linear, matmul, einsum."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from devicefit.interp.registry import bool_, register, str_


@register("linear")
def linear(x, weight, bias=None):
    return F.linear(x, weight, bias)


@register("matmul", attrs={"transpose_x": bool_, "transpose_y": bool_})
def matmul(x, y, transpose_x=False, transpose_y=False):
    if transpose_x:
        x = x.transpose(-1, -2) if x.dim() > 1 else x
    if transpose_y:
        y = y.transpose(-1, -2) if y.dim() > 1 else y
    if not x.is_floating_point() and not y.is_floating_point():
        return torch.matmul(x.to(torch.int64), y.to(torch.int64)).to(x.dtype)
    return torch.matmul(x, y)


@register("einsum", attrs={"equation": str_}, variadic=("values",))
def einsum(values, equation):
    return torch.einsum(equation, *values)
