"""Ops the third outside-model sweep met that coremltools 9.0 lacks or mishandles.

* ``unsafe_chunk`` / ``unsafe_split`` / ``unsafe_split_with_sizes``: TorchScript inlines ``nn.GRUCell`` and
  ``nn.LSTMCell`` into two linears and an ``unsafe_chunk`` of the gates (a seq2seq decoder stepping a GRUCell
  did not convert). "Unsafe" only drops autograd's aliasing checks: each becomes one exact ``split``.
* ``conj`` and complex ``mul``: an FFT spectrum times a conjugate (HF Autoformer's auto-correlation).
* ``cumsum`` along a negative dim other than -1 (HF Informer), which MIL refuses (``logcumsumexp``: rescue/order.py).
* ``fake_quantize_per_tensor_affine`` / ``_per_channel_affine``: a QAT model exported with its fake-quant ops.
* ``log_softmax`` computed stably: coremltools' ``log(softmax(x))`` saturates where softmax underflows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, frontend
from devicefit.convert.rescue._registry import DELEGATED, rescue


def chunk_sizes(total: int, chunks: int) -> list[int]:
    """``torch.chunk``'s piece sizes: ``ceil(total / chunks)`` each, the last one shorter (maybe fewer pieces)."""
    size = math.ceil(total / chunks)
    return [min(size, total - start) for start in range(0, total, size)]


@rescue("unsafe_chunk", "coremltools 9.0 does not know it (TorchScript's GRUCell / LSTMCell gates)")
def unsafe_chunk(context: Any, node: Any) -> None:
    """``torch.unsafe_chunk(x, chunks, dim=0)``: one ``split`` into ``torch.chunk``'s sizes. The split axis
    must have a static length (the number of outputs depends on it)."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    x = inputs[0]
    chunks = int(const_value(inputs[1]))
    dim = int(const_value(arg(context, node, inputs, 2, "dim"), 0)) % x.rank
    total = x.shape[dim]
    if not isinstance(total, int):
        raise NotImplementedError("unsafe_chunk along an axis of flexible length")
    sizes = chunk_sizes(total, chunks)
    if len(sizes) == 1:  # NOTE: MIL's split needs two pieces at least; one chunk is the tensor itself
        out: Any = (mb.identity(x=x, name=node.name),)
    else:
        out = mb.split(x=x, split_sizes=sizes, axis=dim, name=node.name)
    context.add(out, torch_name=node.name)


def _split(context: Any, node: Any) -> None:
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY

    _TORCH_OPS_REGISTRY.get_func("split")(context, node)


rescue("unsafe_split", "coremltools 9.0 does not know it; the values are split's")(_split)
rescue("unsafe_split_with_sizes", "coremltools 9.0 does not know it; the values are split_with_sizes'")(
    _split
)


@rescue(
    "_conj",
    "coremltools 9.0 does not know it (HF Autoformer: irfft(rfft(q) * conj(rfft(k))))",
    aliases=("conj", "conj_physical", "resolve_conj"),
)
def conj(context: Any, node: Any) -> None:
    """``torch.conj(x)``: a complex ``x`` (from an FFT) becomes ``complex(real, -imag)`` in coremltools' complex
    dialect, which its passes lower with the FFT around it; a real ``x`` is itself (PyTorch's no-op)."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    x = frontend()._get_inputs(context, node, expected=1)[0]
    if types.is_complex(x.dtype):
        imag = mb.mul(x=mb.complex_imag(data=x), y=-1.0)
        out = mb.complex(real_data=mb.complex_real(data=x), imag_data=imag, name=node.name)
    else:
        out = mb.identity(x=x, name=node.name)
    context.add(out, node.name)


@rescue(
    "mul",
    "override: coremltools 9.0 adds complex tensors but refuses to multiply them (an FFT spectrum times a "
    "conjugate: Autoformer's auto-correlation); every real product stays with coremltools",
    override=True,
)
def mul(context: Any, node: Any) -> object:
    """A complex product ``(a + bi)(c + di) = (ac - bd) + (ad + bc)i`` in coremltools' complex dialect (a real
    operand has no imaginary part), as coremltools' own ``add`` does it; anything else is coremltools' ``mul``."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    inputs = frontend()._get_inputs(context, node, expected=2)
    if not any(types.is_complex(getattr(v, "dtype", None)) for v in inputs):
        frontend().mul(context, node)
        return DELEGATED
    parts = []
    for v in inputs:
        if types.is_complex(v.dtype):
            parts.append((mb.complex_real(data=v), mb.complex_imag(data=v)))
        else:
            parts.append((v, None))
    (a, b), (c, d) = parts
    real = mb.mul(x=a, y=c)
    imag_terms = [mb.mul(x=a, y=d)] if d is not None else []
    if b is not None:
        imag_terms.append(mb.mul(x=b, y=c))
        if d is not None:
            real = mb.sub(x=real, y=mb.mul(x=b, y=d))
    imag = imag_terms[0] if len(imag_terms) == 1 else mb.add(x=imag_terms[0], y=imag_terms[1])
    context.add(mb.complex(real_data=real, imag_data=imag, name=node.name), node.name)
    return None


@rescue(
    "cumsum",
    "override: coremltools 9.0 hands a negative dim other than -1 to MIL's cumsum, which refuses it (HF Informer: "
    "cumsum(dim=-2)); the dim is made non-negative, the rest is coremltools' translation",
    override=True,
)
def cumsum(context: Any, node: Any) -> object:
    """``torch.cumsum(x, dim, dtype=None)`` (bool counted as int32, ``dtype`` cast first) along ``dim % rank``; a
    dim MIL takes (``-1`` or non-negative) stays with coremltools. (``logcumsumexp``, any dim: rescue/order.py.)"""
    from coremltools.converters.mil.frontend.torch.utils import NUM_TO_DTYPE_STRING
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    ops = frontend()
    inputs = ops._get_inputs(context, node, min_expected=2)
    x = inputs[0]
    dim = int(const_value(inputs[1]))
    if dim >= -1:
        ops.cumsum(context, node)
        return DELEGATED
    axis = dim % x.rank
    dtype = inputs[2] if len(inputs) > 2 else ops._get_kwinputs(context, node, "dtype", default=[None])[0]
    if types.is_bool(x.dtype):
        x = mb.cast(x=x, dtype="int32")
    wanted = None if const_value(dtype) is None else NUM_TO_DTYPE_STRING[int(const_value(dtype))]
    if wanted is not None and types.builtin_to_string(x.dtype) != wanted:
        x = mb.cast(x=x, dtype=wanted)
    context.add(mb.cumsum(x=x, axis=axis, name=node.name))
    return None


def _param(value: Any, rank: int, axis: int | None) -> Any:
    """A quantization parameter as float32, shaped to broadcast along ``axis`` (per channel) or as a scalar."""
    from coremltools.converters.mil.mil import Builder as mb

    const = const_value(value)
    if const is not None:
        arr = np.asarray(const, dtype=np.float32)
        return (
            arr.reshape([-1 if d == axis else 1 for d in range(rank)])
            if axis is not None
            else arr.reshape(())
        )
    var = mb.cast(x=value, dtype="fp32") if value.dtype != _fp32() else value
    if axis is None:
        return mb.reshape(x=var, shape=[1] * rank)
    return mb.reshape(x=var, shape=[-1 if d == axis else 1 for d in range(rank)])


def _fp32() -> Any:
    from coremltools.converters.mil.mil import types

    return types.fp32


def _fake_quantize(context: Any, node: Any, x: Any, scale: Any, zero_point: Any, low: Any, high: Any) -> None:
    """``(clamp(round_half_even(x * (1 / scale)) + zp, low, high) - zp) * scale``, PyTorch's kernel step by
    step: the inverse scale in float32, MIL's ``round`` rounds ties to even like ``std::nearbyint``. The clamp
    is applied as ``[low - zp, high - zp]`` to the rounded value, and a round trip through int32 makes a
    rounded ``-0`` the ``+0`` PyTorch's integer arithmetic gives."""
    from coremltools.converters.mil.mil import Builder as mb

    inverse = (
        np.float32(1.0) / scale if isinstance(scale, np.ndarray) else mb.real_div(x=np.float32(1.0), y=scale)
    )
    rounded = mb.round(x=mb.mul(x=x, y=inverse))
    lo = np.float32(const_value(low))
    hi = np.float32(const_value(high))
    if isinstance(zero_point, np.ndarray):
        floor, ceiling = (lo - zero_point).astype(np.float32), (hi - zero_point).astype(np.float32)
    else:
        floor, ceiling = mb.sub(x=lo, y=zero_point), mb.sub(x=hi, y=zero_point)
    q = mb.minimum(x=mb.maximum(x=rounded, y=floor), y=ceiling)
    q = mb.cast(x=mb.cast(x=q, dtype="int32"), dtype="fp32")
    context.add(mb.mul(x=q, y=scale, name=node.name), node.name)


@rescue(
    "fake_quantize_per_tensor_affine",
    "coremltools 9.0 does not know it (a QAT model exported with its fake-quant ops)",
    aliases=("fake_quantize_per_tensor_affine.tensor_qparams",),
)
def fake_quantize_per_tensor(context: Any, node: Any) -> None:
    """``torch.fake_quantize_per_tensor_affine(x, scale, zero_point, quant_min, quant_max)``: exact in fp32
    (every step but the first product is on integers)."""
    inputs = frontend()._get_inputs(context, node, expected=5)
    x = inputs[0]
    _fake_quantize(
        context,
        node,
        x,
        _param(inputs[1], x.rank, None),
        _param(inputs[2], x.rank, None),
        inputs[3],
        inputs[4],
    )


@rescue(
    "fake_quantize_per_channel_affine",
    "coremltools 9.0 does not know it (a QAT model's per-channel weight fake-quant)",
)
def fake_quantize_per_channel(context: Any, node: Any) -> None:
    """``torch.fake_quantize_per_channel_affine(x, scale, zero_point, axis, quant_min, quant_max)``."""
    inputs = frontend()._get_inputs(context, node, expected=6)
    x = inputs[0]
    axis = int(const_value(inputs[3])) % x.rank
    _fake_quantize(
        context,
        node,
        x,
        _param(inputs[1], x.rank, axis),
        _param(inputs[2], x.rank, axis),
        inputs[4],
        inputs[5],
    )


@rescue(
    "log_softmax",
    "override: coremltools 9.0 computes log(softmax(x)), which is -inf (fp16) or log of the smallest float "
    "(fp32) wherever softmax underflows: a logit 17 below the top one in fp16 (CTC heads), 104 in fp32",
    override=True,
    aliases=("_log_softmax",),
)
def log_softmax(context: Any, node: Any) -> None:
    """``torch.log_softmax(x, dim)`` as PyTorch computes it: ``(x - max) - log(sum(exp(x - max)))``; every
    term is finite (the sum is at least 1)."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    x = inputs[0]
    axis = int(const_value(inputs[1])) % x.rank
    shifted = mb.sub(x=x, y=mb.reduce_max(x=x, axes=[axis], keep_dims=True))
    total = mb.reduce_sum(x=mb.exp(x=shifted), axes=[axis], keep_dims=True)
    context.add(mb.sub(x=shifted, y=mb.log(x=total), name=node.name), node.name)
