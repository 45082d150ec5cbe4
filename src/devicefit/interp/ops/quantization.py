"""Activation quantization (iOS17): quantize and dequantize.

Unlike the ``constexpr_*`` ops these run on activations at inference time. Semantics follow coremltools'
``optimize._utils.quantize_by_scale_and_zp`` / ``dequantize_by_scale_and_zp``.
"""

from __future__ import annotations

import torch

from devicefit.interp import dtypes
from devicefit.interp.ops.compression import affine_dequantize, along_axis
from devicefit.interp.registry import int_, register, str_

_RANGES = {"int8": (-128, 127), "uint8": (0, 255)}


@register("quantize", since="iOS17", attrs={"axis": int_, "output_dtype": str_})
def quantize(input, scale, output_dtype, zero_point=None, axis=None):
    if output_dtype not in _RANGES:
        raise ValueError(f"quantize: output_dtype must be int8 or uint8, got {output_dtype!r}")
    low, high = _RANGES[output_dtype]
    rank = input.dim()
    # NOTE: torch.round rounds half to even, as numpy's np.around in the reference does.
    q = torch.round(input.to(torch.float32) / along_axis(scale.to(torch.float32), rank, axis))
    if zero_point is not None:
        q = q + along_axis(zero_point.to(torch.float32), rank, axis)
    return q.clamp(low, high).to(dtypes.held_dtype(output_dtype))


@register("dequantize", since="iOS17", attrs={"axis": int_})
def dequantize(input, scale, zero_point=None, axis=None):
    return affine_dequantize(input, scale, zero_point, axis)
