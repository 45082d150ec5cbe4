"""Mask-building ops: ``new_ones``, ``&`` / ``|`` / ``^`` on bool (or float-typed bool) masks, ``*_like`` with dtype."""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import dtype_arg, fill, frontend
from devicefit.convert.rescue._registry import rescue


@rescue("new_ones", "coremltools 9.0 has no translation (HF transformers 5.x masks use it)")
def new_ones(context: Any, node: Any) -> None:
    """``x.new_ones(size, dtype=...)``: a tensor of ones, of ``dtype`` or ``x``'s dtype."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.type_mapping import builtin_to_string

    ops = frontend()
    inputs = ops._get_inputs(context, node, min_expected=2)
    dtype = dtype_arg(context, node, inputs, 2) or builtin_to_string(inputs[0].dtype)
    dtype = {"int64": "int32", "uint8": "int32", "int8": "int32", "int16": "int32"}.get(dtype, dtype)
    ones = fill(inputs[1], 1.0)
    context.add(mb.cast(x=ones, dtype=dtype, name=node.name))


_NO_INT_BITS = (
    "Core ML has no integer bitwise ops: compute it outside the model, or use arithmetic (for non-negative x, "
    "x & (2**k - 1) is x % 2**k and x >> k is x // 2**k)"
)


def _bitwise(context: Any, node: Any, name: str, fold: Any, logical: str) -> None:
    """``a <op> b`` for ``&`` / ``|`` / ``^``: logical op on bool (or bool-valued float) tensors; exact on int constants."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    ops = frontend()
    x, y = ops._get_inputs(context, node, expected=2)
    ints = [v for v in (x, y) if types.is_int(v.dtype)]
    if ints and len(ints) == 2:
        if x.val is None or y.val is None:
            raise NotImplementedError(f"{name} of non-constant integer tensors: {_NO_INT_BITS}")
        context.add(mb.const(val=fold(x.val, y.val).astype(np.int32), name=node.name))
        return
    # torch defines these only on bool/int; a float here is a bool mask whose dtype the frontend dropped.
    x = x if types.is_bool(x.dtype) else mb.cast(x=x, dtype="bool")
    y = y if types.is_bool(y.dtype) else mb.cast(x=y, dtype="bool")
    context.add(getattr(mb, logical)(x=x, y=y, name=node.name))


@rescue(
    "bitwise_and",
    "coremltools 9.0 rejects non-bool inputs; HF masks reach it as float/int 0-1 tensors",
    override=True,
    # torch.export names it aten.__and__.Tensor; coremltools checks "__and__" but looks up "__and_".
    aliases=("and", "__and__", "__and_"),
)
def bitwise_and(context: Any, node: Any) -> None:
    """``a & b``: logical and on bool (or bool-valued float) tensors; exact bitwise and on int constants."""
    _bitwise(context, node, "bitwise_and", np.bitwise_and, "logical_and")


@rescue(
    "bitwise_or",
    "coremltools 9.0 has no translation; attention masks combine bool masks with | (causal | self, padding)",
    aliases=("or", "__or__", "__or_"),
)
def bitwise_or(context: Any, node: Any) -> None:
    """``a | b``: logical or on bool (or bool-valued float) tensors; exact bitwise or on int constants."""
    _bitwise(context, node, "bitwise_or", np.bitwise_or, "logical_or")


@rescue(
    "bitwise_xor",
    "coremltools 9.0 has no translation (bool masks: a ^ b)",
    aliases=("xor", "__xor__", "__xor_"),
)
def bitwise_xor(context: Any, node: Any) -> None:
    """``a ^ b``: logical xor on bool (or bool-valued float) tensors; exact bitwise xor on int constants."""
    _bitwise(context, node, "bitwise_xor", np.bitwise_xor, "logical_xor")


_HELD = {"int64": "int32", "uint8": "int32", "int8": "int32", "int16": "int32", "fp64": "fp32"}


def _filled_like(context: Any, node: Any, value: float | None) -> None:
    """``torch.*_like(x, [fill_value,] dtype=...)``: ``x``'s shape, filled, of ``dtype`` (else ``x``'s dtype)."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.type_mapping import builtin_to_string

    ops = frontend()
    inputs = ops._get_inputs(context, node, min_expected=1 if value is not None else 2)
    x = inputs[0]
    dtype_at = 1 if value is not None else 2
    if value is None:
        value = float(inputs[1].val)
    dtype = dtype_arg(context, node, inputs, dtype_at) or builtin_to_string(x.dtype)
    filled = fill(mb.shape(x=x), value)
    context.add(mb.cast(x=filled, dtype=_HELD.get(dtype, dtype), name=node.name))


# NOTE: torch's own attention builds its float masks with zeros_like(bool_mask, dtype=float).masked_fill(
# mask, -inf) (F._canonical_mask: nn.MultiheadAttention / nn.TransformerEncoder key padding masks).
# coremltools 9.0 reads dtype only positionally, so under torch.export it made a *bool* zeros tensor; -inf
# filled into it became True = 1.0, and every padded key was attended: silently wrong (SNR 8.7 dB on a 2-layer
# encoder with 4 padded tokens). ones_like / full_like at iOS16+ ignore dtype altogether (fill_like).
@rescue(
    "zeros_like",
    "coremltools 9.0 ignores a keyword dtype= (torch.export): zeros_like(bool_mask, dtype=float) came out bool",
    override=True,
    aliases=("empty_like",),
)
def zeros_like(context: Any, node: Any) -> None:
    """``torch.zeros_like(x, dtype=...)`` / ``empty_like`` (zeros: an empty tensor's values are unspecified)."""
    _filled_like(context, node, 0.0)


@rescue("ones_like", "coremltools 9.0 ignores dtype= at iOS16+ (fill_like keeps x's type)", override=True)
def ones_like(context: Any, node: Any) -> None:
    """``torch.ones_like(x, dtype=...)``."""
    _filled_like(context, node, 1.0)


@rescue("full_like", "coremltools 9.0 ignores dtype= at iOS16+ (fill_like keeps x's type)", override=True)
def full_like(context: Any, node: Any) -> None:
    """``torch.full_like(x, fill_value, dtype=...)``."""
    _filled_like(context, node, None)


@rescue(
    "zero_",
    "coremltools 9.0 has no translation (y[:, :2].zero_(); torch.export records it as zero)",
    aliases=("zero",),
)
def zero_(context: Any, node: Any) -> None:
    """``x.zero_()``: zeros of ``x``'s shape and dtype (the write back into a sliced ``x`` is the graph's)."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.type_mapping import builtin_to_string

    x = frontend()._get_inputs(context, node, expected=1)[0]
    dtype = builtin_to_string(x.dtype)
    context.add(mb.cast(x=fill(mb.shape(x=x), 0.0), dtype=_HELD.get(dtype, dtype), name=node.name))
