"""Dense linear algebra: linear, matmul, einsum."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from devicefit.errors import ModelLoadError
from devicefit.interp import dtypes
from devicefit.interp.registry import OpSignature, bool_, register, str_


def _int_matmul(x: torch.Tensor, y: torch.Tensor, like: torch.dtype) -> torch.Tensor:
    # torch has no int32 matmul on CPU: accumulate in int64, then narrow to the op's integer dtype.
    return torch.matmul(x.to(torch.int64), y.to(torch.int64)).to(like)


@register("linear")
def linear(x, weight, bias=None):
    # iOS17 allows a constant weight / bias of another dtype; the output keeps x's dtype.
    weight = weight.to(x.dtype)
    bias = None if bias is None else bias.to(x.dtype)
    if x.is_floating_point():
        return F.linear(x, weight, bias)
    out = _int_matmul(x, weight.transpose(0, 1), x.dtype)
    return out if bias is None else out + bias


def _transposed(t: torch.Tensor, transpose: bool) -> torch.Tensor:
    return t.transpose(-1, -2) if transpose and t.dim() > 1 else t


def check_matmul(sig: OpSignature) -> None:
    """Refuse a 1-D ``x`` times a batched ``y`` whose declared output is not numpy's.

    The MIL spec follows ``numpy.matmul``: ``(K,) @ (B, K, N) -> (B, N)``. coremltools 9.0 and earlier infer
    ``(1, N)`` instead (they drop the batch axis, not the inserted one; fixed upstream in coremltools PR
    #2719), and the Core ML runtime refuses to run such a program (coremltools issue #2263). Computing
    ``(B, N)`` under a ``(1, N)`` declaration would report results for a model no device runs.
    """
    x, y, out = sig.input_shapes.get("x"), sig.input_shapes.get("y"), sig.output_shapes[0]
    if x is None or y is None or out is None or len(x) != 1 or len(y) < 3:
        return
    n = y[-2] if sig.consts.get("transpose_y") else y[-1]
    spec = (*y[:-2], n)
    if None in spec or None in out or tuple(out) == spec:
        return
    raise ModelLoadError(
        f"op 'matmul' ({sig.name}) multiplies a 1-D x {tuple(x)} by a batched y {tuple(y)} and the program "
        f"declares its output {tuple(out)}, not the spec's {spec}: coremltools 9.0 and earlier infer this shape "
        "wrongly and Core ML does not run the op (coremltools issue #2263); make x 2-D before the matmul "
        "(x.unsqueeze(0) in the PyTorch model) and convert again"
    )


@register("matmul", attrs={"transpose_x": bool_, "transpose_y": bool_}, check=check_matmul)
def matmul(x, y, transpose_x=False, transpose_y=False):
    x, y = _transposed(x, transpose_x), _transposed(y, transpose_y)
    if not x.is_floating_point():
        return _int_matmul(x, y, x.dtype)
    return torch.matmul(x, y)


@register("matmul", since="iOS17", attrs={"transpose_x": bool_, "transpose_y": bool_}, check=check_matmul)
def matmul_ios17(x, y, transpose_x=False, transpose_y=False, ctx=None):
    # iOS17: one operand may be a constant of another dtype; the output has the non-constant one's dtype,
    # which only the declared output type tells (either operand may be the constant).
    x, y = _transposed(x, transpose_x), _transposed(y, transpose_y)
    held = x.dtype if ctx is None else dtypes.held_dtype(ctx.output_dtypes[0] or "fp32")
    if held.is_floating_point:
        return torch.matmul(x.to(held), y.to(held))
    return _int_matmul(x.to(held), y.to(held), held)


@register("einsum", attrs={"equation": str_}, variadic=("values",))
def einsum(values, equation):
    return torch.einsum(equation, *values)
