"""Type conversion: cast."""

from __future__ import annotations

import torch

from devicefit.interp import dtypes
from devicefit.interp.registry import register, str_


@register("cast", attrs={"dtype": str_})
def cast(x, dtype):
    target = dtypes.held_dtype(dtype)
    if x.is_floating_point() and not target.is_floating_point and target != torch.bool:
        # MIL casts float -> int by truncation toward zero, like C.
        return torch.trunc(x).to(target)
    return x.to(target)
