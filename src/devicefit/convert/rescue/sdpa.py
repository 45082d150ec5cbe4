"""``F.scaled_dot_product_attention`` with a bool or causal mask where coremltools decomposes it.

Below iOS18, or with ``scale=`` (MIL's fused ``scaled_dot_product_attention`` has no scale), coremltools 9.0 builds
``softmax(q k^T * scale + mask) v`` and turns a bool mask into an added ``-3e4``: a masked score more than 3e4
above the kept ones still wins (found by the differential fuzzer, tests/interp/difffuzz.py, seed 217: a causal
attention over values in the thousands attended to later positions). Here masked scores are *replaced* by
``-inf`` (a ``select``, so nothing is added to an infinity and fp16 stays finite wherever a row keeps a key).

PyTorch 2.5's ``enable_gqa=True`` (grouped-query attention: fewer key / value heads than query heads, each shared
by consecutive query heads; Hugging Face's SDPA attention passes it when there is no mask) is ignored by
coremltools, which then fails to broadcast the heads; here the key / value heads are repeated (what
``repeat_interleave`` along the heads does) and the attention built as above, with any float mask added.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, frontend, select
from devicefit.convert.rescue._registry import DELEGATED, rescue


@rescue(
    "scaled_dot_product_attention",
    "override: below iOS18 or with scale=, coremltools 9.0 masks a bool / causal mask by adding -3e4, which does "
    "not mask scores more than 3e4 apart (wrong values, no error); float masks and the fused iOS18 op stay with "
    "coremltools",
    override=True,
)
def scaled_dot_product_attention(context: Any, node: Any) -> object:
    """``F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale)``."""
    from coremltools import target
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types
    from coremltools.converters.mil.mil.block import is_current_opset_version_compatible_with
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic
    from coremltools.converters.mil.mil.types.type_mapping import nptype_from_builtin

    ops = frontend()
    inputs = ops._get_inputs(context, node, min_expected=3)
    q, k, v = inputs[:3]
    mask = arg(context, node, inputs, 3, "attn_mask")
    causal = bool(const_value(arg(context, node, inputs, 5, "is_causal"), False))
    scale = const_value(arg(context, node, inputs, 6, "scale"), None)
    gqa = bool(const_value(arg(context, node, inputs, 7, "enable_gqa"), False))
    fused = is_current_opset_version_compatible_with(target.iOS18) and scale is None
    boolean = causal or (mask is not None and types.is_bool(mask.dtype))
    static = not any_symbolic(q.shape[-2:]) and not any_symbolic(k.shape[-2:])
    q_heads, kv_heads = (_heads(q), _heads(k)) if gqa and q.rank >= 3 and q.rank == k.rank else (None, None)
    if q_heads and kv_heads and q_heads != kv_heads and static and not any_symbolic(q.shape[-1:]):
        k, v = _repeat_heads(k, q_heads // kv_heads), _repeat_heads(v, q_heads // kv_heads)
    elif fused or not boolean or not static or q.rank != k.rank or not types.is_float(q.dtype):
        ops.scaled_dot_product_attention(context, node)
        return DELEGATED
    dtype = nptype_from_builtin(q.dtype)
    factor = float(scale) if scale is not None else 1.0 / float(np.sqrt(int(q.shape[-1])))
    scores = mb.matmul(x=mb.mul(x=q, y=dtype(factor)), y=k, transpose_y=True)
    if causal:
        mask = np.tril(np.ones((int(q.shape[-2]), int(k.shape[-2])), dtype=bool))
    if causal or (mask is not None and types.is_bool(mask.dtype)):
        scores = select(cond=mask, a=scores, b=dtype(-np.inf))
    elif mask is not None:
        scores = mb.add(x=scores, y=mask)
    weights = mb.softmax(x=scores, axis=-1)
    context.add(mb.matmul(x=weights, y=v, name=node.name), torch_name=node.name)
    return None


def _heads(x: Any) -> int | None:
    """The head count of a ``(..., heads, seq, dim)`` attention operand, when its whole shape is static."""
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic

    return None if any_symbolic(x.shape) else int(x.shape[-3])


def _repeat_heads(x: Any, groups: int) -> Any:
    """``x.repeat_interleave(groups, dim=-3)`` for a static ``(..., heads, seq, dim)`` value: each head repeated
    ``groups`` times in a row, as ``enable_gqa`` shares a key / value head among consecutive query heads."""
    from coremltools.converters.mil.mil import Builder as mb

    shape = [int(d) for d in x.shape]
    tiled = mb.tile(x=mb.expand_dims(x=x, axes=[-3]), reps=[1] * (len(shape) - 2) + [groups, 1, 1])
    return mb.reshape(x=tiled, shape=[*shape[:-3], shape[-3] * groups, *shape[-2:]])
