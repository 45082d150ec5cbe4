"""PyTorch's fused attention fast paths (``nn.MultiheadAttention``, ``nn.TransformerEncoderLayer``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import MASK_NEG, frontend, select, tail_shape
from devicefit.convert.rescue._registry import rescue


def _additive_mask(mask: Any, mask_type: int | None, dtype_like: Any) -> Any:
    """Turn a bool mask (True = masked) or float mask into an additive mask broadcastable to (B,H,L,S)."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    if types.is_bool(mask.dtype):
        mask = select(cond=mask, a=np.float32(MASK_NEG), b=np.float32(0.0))
    elif not types.is_float(mask.dtype):
        mask = select(cond=mb.cast(x=mask, dtype="bool"), a=np.float32(MASK_NEG), b=np.float32(0.0))
    if mask_type == 1:  # key padding (B, S) -> (B, 1, 1, S)
        mask = mb.expand_dims(x=mask, axes=[1, 2])
    return mask


def _self_attention(
    query: Any,
    key: Any,
    value: Any,
    num_heads: int,
    qkv_w: np.ndarray,
    qkv_b: np.ndarray,
    out_w: Any,
    out_b: Any,
    mask: Any,
    mask_type: int | None,
) -> tuple[Any, Any]:
    """Multi-head attention over batch-first (B, L, E) tensors; returns (output, per-head probabilities)."""
    from coremltools.converters.mil.mil import Builder as mb

    embed = int(qkv_w.shape[1])
    head_dim = embed // num_heads

    def project(x: Any, i: int) -> Any:
        w = qkv_w[i * embed : (i + 1) * embed]
        b = qkv_b[i * embed : (i + 1) * embed]
        y = mb.linear(x=x, weight=w, bias=b)
        y = mb.reshape(x=y, shape=tail_shape(x, 2, [num_heads, head_dim]))
        return mb.transpose(x=y, perm=[0, 2, 1, 3])  # (B, H, L, D)

    q = mb.mul(x=project(query, 0), y=np.float32(1.0 / np.sqrt(head_dim)))
    k, v = project(key, 1), project(value, 2)
    scores = mb.matmul(x=q, y=k, transpose_y=True)
    if mask is not None:
        scores = mb.add(x=scores, y=_additive_mask(mask, mask_type, scores))
    probs = mb.softmax(x=scores, axis=-1)
    heads = mb.transpose(x=mb.matmul(x=probs, y=v), perm=[0, 2, 1, 3])
    merged = mb.reshape(x=heads, shape=tail_shape(query, 2, [embed]))
    return mb.linear(x=merged, weight=out_w, bias=out_b), probs


def _const(var: Any, what: str) -> Any:
    if var is None:
        return None
    if var.val is None:
        raise NotImplementedError(f"{what} must be a constant (a module parameter) to convert")
    return var.val


def _mask_type(var: Any) -> int | None:
    return None if var is None or var.val is None else int(var.val)


@rescue(
    "_native_multi_head_attention",
    "nn.MultiheadAttention's fused fast path (eval, no_grad, batch_first) has no coremltools translation",
)
def native_multi_head_attention(context: Any, node: Any) -> None:
    """``torch._native_multi_head_attention``: outputs (attention output, attention weights)."""
    from coremltools.converters.mil.mil import Builder as mb

    ops = frontend()
    inputs = ops._get_inputs(context, node, min_expected=9)
    query, key, value = inputs[0], inputs[1], inputs[2]
    num_heads = int(inputs[4].val)
    args = [*inputs, None, None, None, None][:13]
    mask, need_weights, average, mask_type = args[9], args[10], args[11], args[12]
    out, probs = _self_attention(
        query,
        key,
        value,
        num_heads,
        _const(inputs[5], "qkv weight"),
        _const(inputs[6], "qkv bias"),
        _const(inputs[7], "out-proj weight"),
        _const(inputs[8], "out-proj bias"),
        mask,
        _mask_type(mask_type),
    )
    context.add(mb.identity(x=out, name=node.outputs[0]), torch_name=node.outputs[0])
    if len(node.outputs) > 1:
        average_heads = average is None or average.val is None or bool(average.val)
        want = need_weights is None or need_weights.val is None or bool(need_weights.val)
        weights = mb.reduce_mean(x=probs, axes=[1], keep_dims=False) if average_heads and want else probs
        context.add(mb.identity(x=weights, name=node.outputs[1]), torch_name=node.outputs[1])


@rescue(
    "_transformer_encoder_layer_fwd",
    "nn.TransformerEncoderLayer's fused fast path (eval, no_grad) has no coremltools translation",
)
def transformer_encoder_layer_fwd(context: Any, node: Any) -> None:
    """``torch._transformer_encoder_layer_fwd``: one post- or pre-norm encoder layer."""
    from coremltools.converters.mil.mil import Builder as mb

    ops = frontend()
    inputs = ops._get_inputs(context, node, min_expected=18)
    src = inputs[0]
    num_heads = int(inputs[2].val)
    use_gelu, norm_first, eps = bool(inputs[7].val), bool(inputs[8].val), float(inputs[9].val)
    ln1 = (_const(inputs[10], "norm1 weight"), _const(inputs[11], "norm1 bias"))
    ln2 = (_const(inputs[12], "norm2 weight"), _const(inputs[13], "norm2 bias"))
    ff1 = (_const(inputs[14], "linear1 weight"), _const(inputs[15], "linear1 bias"))
    ff2 = (_const(inputs[16], "linear2 weight"), _const(inputs[17], "linear2 bias"))
    extra = [*inputs[18:], None, None][:2]
    mask, mask_type = extra[0], _mask_type(extra[1])

    def norm(x: Any, wb: tuple) -> Any:
        return mb.layer_norm(x=x, axes=[-1], gamma=wb[0], beta=wb[1], epsilon=eps)

    def attend(x: Any) -> Any:
        qkv_w, qkv_b = _const(inputs[3], "qkv weight"), _const(inputs[4], "qkv bias")
        out_w, out_b = _const(inputs[5], "out-proj weight"), _const(inputs[6], "out-proj bias")
        return _self_attention(x, x, x, num_heads, qkv_w, qkv_b, out_w, out_b, mask, mask_type)[0]

    def feed_forward(x: Any) -> Any:
        h = mb.linear(x=x, weight=ff1[0], bias=ff1[1])
        h = mb.gelu(x=h, mode="EXACT") if use_gelu else mb.relu(x=h)
        return mb.linear(x=h, weight=ff2[0], bias=ff2[1])

    if norm_first:
        x = mb.add(x=src, y=attend(norm(src, ln1)))
        out = mb.add(x=x, y=feed_forward(norm(x, ln2)), name=node.name)
    else:
        x = norm(mb.add(x=src, y=attend(src)), ln1)
        out = mb.layer_norm(
            x=mb.add(x=x, y=feed_forward(x)),
            axes=[-1],
            gamma=ln2[0],
            beta=ln2[1],
            epsilon=eps,
            name=node.name,
        )
    context.add(out)
