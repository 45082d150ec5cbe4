"""``rms_norm`` (``nn.RMSNorm``, ``F.rms_norm``), which coremltools 9.0 translates with the wrong epsilon."""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import frontend
from devicefit.convert.rescue._registry import rescue

# PyTorch's eps=None: torch.finfo(float32).eps
_TORCH_DEFAULT_EPS = float(np.finfo(np.float32).eps)


@rescue(
    "rms_norm",
    "override: coremltools scales x by max|x| to keep x^2 inside fp16 but adds eps to the scaled mean square, "
    "so the eps used is eps * max|x|^2 (61% off at |x| ~ 1e-3, eps 1e-6), and eps=None becomes 1e-5",
    override=True,
)
def rms_norm(context: Any, node: Any) -> None:
    """``x / sqrt(mean(x^2) + eps) * weight`` over the trailing ``normalized_shape`` axes, as PyTorch.

    Computed as ``x / (m * sqrt(mean((x / m)^2) + eps / m^2))`` with ``m = max(max|x|, 1)``: the same value for
    any ``m > 0``, and with ``m >= max|x|`` the squares stay within [0, 1], so fp16 cannot overflow (the reason
    coremltools scales). ``m`` is at least 1 so an all-zero row (padding) gives 0, not 0/0.
    """
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    x, shape = inputs[0], inputs[1]
    weight = inputs[2] if len(inputs) > 2 else None
    eps = inputs[3].val if len(inputs) > 3 and inputs[3] is not None and inputs[3].val is not None else None
    eps = _TORCH_DEFAULT_EPS if eps is None else float(eps)
    count = len(np.atleast_1d(shape.val)) if shape.val is not None else len(shape)
    axes = list(range(-count, 0))
    dtype = np.float16 if str(x.dtype).endswith("fp16") else np.float32
    scale = mb.maximum(x=mb.reduce_max(x=mb.abs(x=x), axes=axes, keep_dims=True), y=dtype(1.0))
    scaled = mb.real_div(x=x, y=scale)
    mean_square = mb.reduce_mean(x=mb.square(x=scaled), axes=axes, keep_dims=True)
    shifted = mb.add(x=mean_square, y=mb.real_div(x=dtype(eps), y=mb.square(x=scale)))
    out = mb.real_div(x=scaled, y=mb.sqrt(x=shifted))
    if weight is not None and getattr(weight, "val", 0) is not None:
        context.add(mb.mul(x=out, y=weight, name=node.name), torch_name=node.name)
    else:
        context.add(mb.identity(x=out, name=node.name), torch_name=node.name)
