"""``nansum``, ``nanmean`` and ``renorm`` (coremltools 9.0: no translation) as masked MIL reductions."""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, dtype_arg, frontend, select
from devicefit.convert.rescue._registry import rescue


def _reduce_args(context: Any, node: Any) -> tuple[Any, list[int] | None, bool, str | None]:
    """``(x, axes or None for all, keepdim, dtype)`` of ``nansum`` / ``nanmean`` on either frontend."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    dim = const_value(arg(context, node, inputs, 1, "dim"), None)
    keepdim = bool(const_value(arg(context, node, inputs, 2, "keepdim"), False))
    dtype = dtype_arg(context, node, inputs, 3)
    if not types.is_float(x.dtype):
        x = mb.cast(x=x, dtype="fp32")
    if dim is None or np.size(dim) == 0:
        axes = None
    else:
        axes = sorted(int(d) % max(x.rank, 1) for d in np.atleast_1d(dim))
    return x, axes, keepdim, dtype


def _nan_free(x: Any) -> tuple[Any, Any]:
    """``(x with NaN replaced by 0, 1.0 where x is not NaN else 0.0)``."""
    from coremltools.converters.mil.mil import Builder as mb

    present = mb.equal(x=x, y=x)
    return select(cond=present, a=x, b=np.float32(0.0)), mb.cast(x=present, dtype="fp32")


def _sum(x: Any, axes: list[int] | None, keepdim: bool, name: str | None = None) -> Any:
    from coremltools.converters.mil.mil import Builder as mb

    kwargs: dict[str, Any] = {"name": name} if name else {}
    if axes is None:
        axes = list(range(x.rank))
    return mb.reduce_sum(x=x, axes=axes, keep_dims=keepdim, **kwargs)


@rescue(
    "nansum", "coremltools 9.0 has no translation (torch.nansum: sums over padded / masked-with-NaN data)"
)
def nansum(context: Any, node: Any) -> None:
    """``sum(where(isnan(x), 0, x))`` over ``dim`` (all axes when absent), ``keepdim``; integers summed as fp32."""
    x, axes, keepdim, _ = _reduce_args(context, node)
    values, _ = _nan_free(x)
    context.add(_sum(values, axes, keepdim, node.name), torch_name=node.name)


@rescue("nanmean", "coremltools 9.0 has no translation (torch.nanmean: means ignoring missing values)")
def nanmean(context: Any, node: Any) -> None:
    """PyTorch's ``nansum(x) / count(not isnan(x))``: NaN where every value is NaN (0 / 0)."""
    from coremltools.converters.mil.mil import Builder as mb

    x, axes, keepdim, _ = _reduce_args(context, node)
    values, present = _nan_free(x)
    total = _sum(values, axes, keepdim)
    count = _sum(present, axes, keepdim)
    context.add(mb.real_div(x=total, y=count, name=node.name), torch_name=node.name)


@rescue("renorm", "coremltools 9.0 has no translation (torch.renorm: max-norm constraints on weight slices)")
def renorm(context: Any, node: Any) -> None:
    """``torch.renorm(x, p, dim, maxnorm)``: each slice along ``dim`` whose ``p``-norm exceeds ``maxnorm`` is scaled
    by ``maxnorm / (norm + 1e-7)`` (PyTorch's kernel); p = 1, 2, inf or any p > 0."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, expected=4)
    x = inputs[0]
    p = float(const_value(inputs[1]))
    dim = int(const_value(inputs[2])) % max(x.rank, 1)
    maxnorm = float(const_value(inputs[3]))
    if p <= 0:
        raise NotImplementedError(f"torch.renorm with p = {p}: only p > 0 (PyTorch requires it too)")
    axes = [a for a in range(x.rank) if a != dim]
    magnitude = mb.abs(x=x)
    # NOTE: coremltools turns a TorchScript constant inf into 3.4e38 (_construct_constant)
    if p >= 3.3e38:  # 3.4e38 as a float32 const is 3.3999999e38
        norm = mb.reduce_max(x=magnitude, axes=axes, keep_dims=True)
    elif p == 1.0:
        norm = mb.reduce_sum(x=magnitude, axes=axes, keep_dims=True)
    elif p == 2.0:
        norm = mb.sqrt(x=mb.reduce_sum(x=mb.mul(x=x, y=x), axes=axes, keep_dims=True))
    else:
        norm = mb.pow(x=mb.reduce_sum(x=mb.pow(x=magnitude, y=p), axes=axes, keep_dims=True), y=1.0 / p)
    factor = mb.real_div(x=maxnorm, y=mb.add(x=norm, y=1e-7))
    factor = select(cond=mb.greater(x=norm, y=maxnorm), a=factor, b=np.float32(1.0))
    context.add(mb.mul(x=x, y=factor, name=node.name), torch_name=node.name)
