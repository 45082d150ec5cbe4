"""``rms_norm`` (``nn.RMSNorm``, ``F.rms_norm``), which coremltools 9.0 translates with the wrong epsilon, and
``linalg.matrix_norm``, which it cannot read on torch.export."""

from __future__ import annotations

import math
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


@rescue(
    "instance_norm",
    "override: coremltools 9.0 ignores use_input_stats=False (nn.InstanceNorm with track_running_stats in eval "
    "mode) and normalizes with the input's statistics instead of the running ones: wrong values, no error",
    override=True,
)
def instance_norm(context: Any, node: Any) -> object:
    """``F.instance_norm(x, running_mean, running_var, weight, bias, use_input_stats, momentum, eps)``.

    With ``use_input_stats=False`` every sample is normalized with the running statistics, which is a batch norm
    (found by the differential fuzzer, tests/interp/difffuzz.py, seed 2360); otherwise coremltools' translation.
    """
    from coremltools.converters.mil.mil import Builder as mb

    from devicefit.convert.rescue._mil import arg, const_value
    from devicefit.convert.rescue._registry import DELEGATED

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    use_input_stats = const_value(arg(context, node, inputs, 5, "use_input_stats"), True)
    mean, var = arg(context, node, inputs, 3, "running_mean"), arg(context, node, inputs, 4, "running_var")
    if bool(use_input_stats) or mean is None or var is None:
        frontend().instance_norm(context, node)
        return DELEGATED
    x = inputs[0]
    weight, bias = arg(context, node, inputs, 1, "weight"), arg(context, node, inputs, 2, "bias")
    eps = float(const_value(arg(context, node, inputs, 7, "eps"), 1e-5))
    optional = {k: v for k, v in (("gamma", weight), ("beta", bias)) if v is not None and v.val is not None}
    if (weight is not None and weight.val is None) or (bias is not None and bias.val is None):
        raise NotImplementedError("instance_norm with running statistics and weights computed at run time")
    out = mb.batch_norm(x=x, mean=mean, variance=var, epsilon=eps, name=node.name, **optional)
    context.add(out, torch_name=node.name)
    return None


@rescue(
    "linalg_matrix_norm",
    "override: on torch.export coremltools expects all 5 inputs (the defaults are left out) and has no "
    "'str_ord' form ('fro', 'nuc'); 'nuc' failed with a TypeError on TorchScript",
    override=True,
    aliases=("linalg_matrix_norm.str_ord",),
)
def linalg_matrix_norm(context: Any, node: Any) -> None:
    """``torch.linalg.matrix_norm(A, ord='fro', dim=(-2, -1), keepdim=False)``: ``'fro'`` (``sqrt(sum |a|^2)``),
    1 / -1 (the largest / smallest column sum of ``|a|``), inf / -inf (row sums; TorchScript's constant inf
    arrives as 3.4e38). ``'nuc'`` and ±2 need singular values, which Core ML cannot compute: refused."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    from devicefit.convert.rescue._mil import arg, const_value, dtype_arg

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    order = const_value(arg(context, node, inputs, 1, "ord"), "fro")
    dims = [
        int(d) % x.rank for d in np.atleast_1d(const_value(arg(context, node, inputs, 2, "dim"), [-2, -1]))
    ]
    keepdim = bool(const_value(arg(context, node, inputs, 3, "keepdim"), False))
    dtype = dtype_arg(context, node, inputs, 4)
    if dtype is not None and dtype != types.builtin_to_string(x.dtype):
        x = mb.cast(x=x, dtype=dtype)
    if len(dims) != 2 or dims[0] == dims[1]:
        raise ValueError(f"matrix_norm takes two distinct dims (got {dims})")
    refused = NotImplementedError(
        f"matrix_norm with ord={order!r} needs singular values (an SVD), which Core ML cannot compute: "
        f"use ord='fro', 1 or inf, or compute it outside the model"
    )
    if isinstance(order, str | np.str_):
        if str(order) != "fro":
            raise refused
        out = mb.sqrt(x=mb.reduce_sum(x=mb.mul(x=x, y=x), axes=dims, keep_dims=keepdim))
    else:
        p = float(order)
        p = math.copysign(math.inf, p) if abs(p) > 3.3e38 else p
        if abs(p) not in (1.0, math.inf):
            raise refused
        # ord 1 sums over the rows (dim[0]) and picks among the columns; inf the other way round
        summed, picked = (dims[0], dims[1]) if abs(p) == 1.0 else (dims[1], dims[0])
        sums = mb.reduce_sum(x=mb.abs(x=x), axes=[summed], keep_dims=True)
        pick = mb.reduce_max if p > 0 else mb.reduce_min
        out = pick(x=sums, axes=[picked] if keepdim else dims, keep_dims=keepdim)
    context.add(mb.identity(x=out, name=node.name), torch_name=node.name)
