"""Extra torch -> MIL op translations ("rescue") for ops coremltools 9.0 lacks or mishandles.

One function per torch op, registered with ``@rescue("op")`` into a table here; :func:`install_rescue`
registers the table into coremltools' torch frontend (``register_torch_op``). A translation whose op
coremltools already handles is skipped (``override=False``), so a newer coremltools wins, unless the
entry says coremltools mishandles it (``override=True``, e.g. ``bitwise_and`` on float inputs).

Each translation is tested against PyTorch through devicefit's interpreter in tests/convert/test_rescue.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# fp16-safe "minus infinity" for additive attention masks: exp() of it underflows to 0 in fp16 and fp32.
_MASK_NEG = float(np.finfo(np.float16).min)


@dataclass(frozen=True)
class Rescue:
    """One translation: the torch op name (as coremltools sanitizes it), the function, and why it exists."""

    op: str
    fn: Callable[[Any, Any], None]
    reason: str
    override: bool = False
    aliases: tuple[str, ...] = ()


RESCUES: dict[str, Rescue] = {}
_installed: list[str] | None = None


def rescue(
    op: str, reason: str, override: bool = False, aliases: tuple[str, ...] = ()
) -> Callable[[Callable], Callable]:
    """Register ``fn(context, node)`` as the translation of torch op ``op`` (installed by install_rescue).

    ``aliases`` are further registry keys for the same translation (installed under the same rule).
    """

    def wrap(fn: Callable) -> Callable:
        RESCUES[op] = Rescue(op=op, fn=fn, reason=reason, override=override, aliases=aliases)
        return fn

    return wrap


def install_rescue() -> list[str]:
    """Register devicefit's extra op translations into coremltools' torch frontend.

    Idempotent: a second call registers nothing and returns the same list.

    Returns:
        The names of the torch ops whose translation devicefit now provides.
    """
    global _installed
    if _installed is not None:
        return list(_installed)
    from devicefit._lazy import coremltools

    coremltools()
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY

    installed = []
    registry = _TORCH_OPS_REGISTRY.name_to_func_mapping
    for entry in RESCUES.values():
        if entry.override or _TORCH_OPS_REGISTRY.get_func(entry.op) is None:
            translation = _named(entry.fn, entry.op)
            for key in (entry.op, *entry.aliases):
                if entry.override or key not in registry:
                    _TORCH_OPS_REGISTRY.set_func_by_name(translation, key)
            installed.append(entry.op)
    _installed = installed
    return list(installed)


def is_rescue(fn: Callable | None) -> bool:
    """Whether ``fn`` (a coremltools registry entry) is one of devicefit's translations."""
    return getattr(fn, "_devicefit_rescue", False)


def _named(fn: Callable, op: str) -> Callable:
    def translation(context: Any, node: Any) -> None:
        fn(context, node)

    translation.__name__ = op
    translation.__doc__ = fn.__doc__
    translation._devicefit_rescue = True  # type: ignore[attr-defined]
    return translation


# --------------------------------------------------------------------------- helpers
def _frontend() -> Any:
    from coremltools.converters.mil.frontend.torch import ops

    return ops


def _dtype_arg(context: Any, node: Any, inputs: list, position: int) -> str | None:
    """The MIL dtype string of a ``dtype=`` argument (positional in TorchScript, keyword in torch.export)."""
    ops = _frontend()
    dtype = inputs[position] if len(inputs) > position else None
    if dtype is None:
        dtype = ops._get_kwinputs(context, node, "dtype", default=[None])[0]
    if dtype is None:
        return None
    value = dtype.val if hasattr(dtype, "val") else dtype
    if value is None:
        return None
    from coremltools.converters.mil.frontend.torch.utils import NUM_TO_DTYPE_STRING, TORCH_DTYPE_TO_NUM

    if not isinstance(value, int | np.integer):
        value = TORCH_DTYPE_TO_NUM[value]
    return NUM_TO_DTYPE_STRING[int(value)]


def _fill(size: Any, value: float) -> Any:
    """``fill(shape=size)`` for a size given as a list of scalars, a const (maybe empty) or a tensor."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    if isinstance(size, list | tuple):
        size = mb.concat(values=list(size), axis=0)
    if size.val is not None:
        return mb.const(val=np.full(tuple(int(d) for d in np.asarray(size.val).ravel()), value, np.float32))
    if not types.is_int(size.dtype):
        size = mb.cast(x=size, dtype="int32")
    return mb.fill(shape=size, value=value)


def _tail_shape(x: Any, keep: int, tail: list[int]) -> Any:
    """Shape ``x.shape[:keep] + tail`` as a const when static, else computed from ``mb.shape``."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic

    head = list(x.shape[:keep])
    if not any_symbolic(head):
        return [int(d) for d in head] + tail
    head_var = mb.slice_by_index(x=mb.shape(x=x), begin=[0], end=[keep])
    return mb.concat(values=[head_var, np.array(tail, dtype=np.int32)], axis=0)


# --------------------------------------------------------------------------- translations
@rescue("new_ones", "coremltools 9.0 has no translation (HF transformers 5.x masks use it)")
def new_ones(context: Any, node: Any) -> None:
    """``x.new_ones(size, dtype=...)``: a tensor of ones, of ``dtype`` or ``x``'s dtype."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.type_mapping import builtin_to_string

    ops = _frontend()
    inputs = ops._get_inputs(context, node, min_expected=2)
    dtype = _dtype_arg(context, node, inputs, 2) or builtin_to_string(inputs[0].dtype)
    dtype = {"int64": "int32", "uint8": "int32", "int8": "int32", "int16": "int32"}.get(dtype, dtype)
    ones = _fill(inputs[1], 1.0)
    context.add(mb.cast(x=ones, dtype=dtype, name=node.name))


@rescue(
    "bitwise_and",
    "coremltools 9.0 rejects non-bool inputs; HF masks reach it as float/int 0-1 tensors",
    override=True,
    # torch.export names it aten.__and__.Tensor; coremltools checks "__and__" but looks up "__and_".
    aliases=("and", "__and__", "__and_"),
)
def bitwise_and(context: Any, node: Any) -> None:
    """``a & b``: logical and on bool (or bool-valued float) tensors; exact bitwise and on int constants."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    ops = _frontend()
    x, y = ops._get_inputs(context, node, expected=2)
    ints = [v for v in (x, y) if types.is_int(v.dtype)]
    if ints and len(ints) == 2:
        if x.val is None or y.val is None:
            raise NotImplementedError("bitwise_and of non-constant integer tensors has no Core ML op")
        context.add(mb.const(val=np.bitwise_and(x.val, y.val).astype(np.int32), name=node.name))
        return
    # torch defines & only on bool/int; a float here is a bool mask whose dtype the frontend dropped.
    x = x if types.is_bool(x.dtype) else mb.cast(x=x, dtype="bool")
    y = y if types.is_bool(y.dtype) else mb.cast(x=y, dtype="bool")
    context.add(mb.logical_and(x=x, y=y, name=node.name))


def _additive_mask(mask: Any, mask_type: int | None, dtype_like: Any) -> Any:
    """Turn a bool mask (True = masked) or float mask into an additive mask broadcastable to (B,H,L,S)."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    if types.is_bool(mask.dtype):
        mask = mb.select(cond=mask, a=np.float32(_MASK_NEG), b=np.float32(0.0))
    elif not types.is_float(mask.dtype):
        mask = mb.select(cond=mb.cast(x=mask, dtype="bool"), a=np.float32(_MASK_NEG), b=np.float32(0.0))
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
        y = mb.reshape(x=y, shape=_tail_shape(x, 2, [num_heads, head_dim]))
        return mb.transpose(x=y, perm=[0, 2, 1, 3])  # (B, H, L, D)

    q = mb.mul(x=project(query, 0), y=np.float32(1.0 / np.sqrt(head_dim)))
    k, v = project(key, 1), project(value, 2)
    scores = mb.matmul(x=q, y=k, transpose_y=True)
    if mask is not None:
        scores = mb.add(x=scores, y=_additive_mask(mask, mask_type, scores))
    probs = mb.softmax(x=scores, axis=-1)
    heads = mb.transpose(x=mb.matmul(x=probs, y=v), perm=[0, 2, 1, 3])
    merged = mb.reshape(x=heads, shape=_tail_shape(query, 2, [embed]))
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

    ops = _frontend()
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

    ops = _frontend()
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
