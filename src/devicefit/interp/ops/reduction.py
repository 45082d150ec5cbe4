"""Reductions (MIL ``reduction``) and arg-reductions."""

from __future__ import annotations

import torch

from devicefit.interp.ops._util import norm_axes
from devicefit.interp.registry import bool_, int_, ints, register, str_


def _axes(x, axes):
    return norm_axes(axes, x.dim()) if axes is not None else list(range(x.dim()))


def _reduce(fn):
    def kernel(x, axes=None, keep_dims=False):
        dims = _axes(x, axes)
        if not dims:
            return x
        return fn(x, dims, keep_dims)

    kernel.__name__ = fn.__name__
    return kernel


_RED = {"axes": ints, "keep_dims": bool_}


register("reduce_sum", attrs=_RED)(_reduce(lambda x, d, k: torch.sum(x, dim=d, keepdim=k)))
register("reduce_mean", attrs=_RED)(
    _reduce(lambda x, d, k: torch.mean(x.float() if not x.is_floating_point() else x, dim=d, keepdim=k))
)
register("reduce_prod", attrs=_RED)(_reduce(lambda x, d, k: _prod(x, d, k)))
register("reduce_max", attrs=_RED)(_reduce(lambda x, d, k: torch.amax(x, dim=d, keepdim=k)))
register("reduce_min", attrs=_RED)(_reduce(lambda x, d, k: torch.amin(x, dim=d, keepdim=k)))
register("reduce_l1_norm", attrs=_RED)(_reduce(lambda x, d, k: torch.sum(torch.abs(x), dim=d, keepdim=k)))
register("reduce_l2_norm", attrs=_RED)(
    _reduce(lambda x, d, k: torch.sqrt(torch.sum(x * x, dim=d, keepdim=k)))
)
register("reduce_sum_square", attrs=_RED)(_reduce(lambda x, d, k: torch.sum(x * x, dim=d, keepdim=k)))
register("reduce_log_sum", attrs=_RED)(_reduce(lambda x, d, k: torch.log(torch.sum(x, dim=d, keepdim=k))))
register("reduce_log_sum_exp", attrs=_RED)(_reduce(lambda x, d, k: torch.logsumexp(x, dim=d, keepdim=k)))


def _prod(x, dims, keep):
    for d in sorted(dims, reverse=True):
        x = torch.prod(x, dim=d, keepdim=keep)
    return x


_ARG = {"axis": int_, "keep_dims": bool_, "output_dtype": str_}


@register("reduce_argmax", attrs=_ARG)
def reduce_argmax(x, axis=-1, keep_dims=False, output_dtype="int32"):
    # iOS17 added output_dtype ("int32" or "uint16"); indices are held as int32 either way.
    return torch.argmax(x, dim=axis, keepdim=keep_dims).to(torch.int32)


@register("reduce_argmin", attrs=_ARG)
def reduce_argmin(x, axis=-1, keep_dims=False, output_dtype="int32"):
    return torch.argmin(x, dim=axis, keepdim=keep_dims).to(torch.int32)
