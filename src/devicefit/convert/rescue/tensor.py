"""Tensor-manipulation ops coremltools 9.0 lacks: ``diff``, ``tensor_split``, ``hsplit`` / ``vsplit`` / ``dsplit``, eval-mode
``alpha_dropout``."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, frontend, select
from devicefit.convert.rescue._registry import rescue


@rescue(
    "diff",
    "coremltools 9.0 has no translation; HF transformers' decoder masks call torch.diff (packed sequences)",
)
def diff(context: Any, node: Any) -> None:
    """``torch.diff(x, n, dim, prepend, append)``: ``n`` times ``x[1:] - x[:-1]`` along ``dim`` (``n=0``: ``x``).

    ``prepend`` / ``append`` are concatenated along ``dim`` first. Bool tensors take ``x[1:] xor x[:-1]`` (what
    torch does). Slicing uses negative ends, so it works on flexible (symbolic) shapes too.
    """
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    n = int(const_value(arg(context, node, inputs, 1, "n"), 1))
    rank = x.rank
    dim = int(const_value(arg(context, node, inputs, 2, "dim"), -1))
    if not -rank <= dim < rank:
        raise ValueError(f"diff: dim {dim} out of range for a rank-{rank} tensor")
    dim %= rank
    if n == 0:  # torch returns the input as is, ignoring prepend / append
        context.add(mb.identity(x=x, name=node.name), torch_name=node.name)
        return
    prepend, append = arg(context, node, inputs, 3, "prepend"), arg(context, node, inputs, 4, "append")
    parts = [v for v in (prepend, x, append) if v is not None]
    if len(parts) > 1:
        parts = [p if p.dtype == x.dtype else mb.cast(x=p, dtype=_dtype_name(x)) for p in parts]
        x = mb.concat(values=parts, axis=dim)
    begin, end = [0] * rank, [0] * rank
    everything = [True] * rank
    except_dim = [d != dim for d in range(rank)]
    begin_tail = list(begin)
    begin_tail[dim] = 1
    end_head = list(end)
    end_head[dim] = -1
    for step in range(n):
        name = node.name if step == n - 1 else None
        tail = mb.slice_by_index(x=x, begin=begin_tail, end=end, begin_mask=except_dim, end_mask=everything)
        head = mb.slice_by_index(x=x, begin=begin, end=end_head, begin_mask=everything, end_mask=except_dim)
        kwargs = {"name": name} if name else {}
        if types.is_bool(x.dtype):
            x = mb.logical_xor(x=tail, y=head, **kwargs)
        else:
            x = mb.sub(x=tail, y=head, **kwargs)
    context.add(x, torch_name=node.name)


def _dtype_name(var: Any) -> str:
    from coremltools.converters.mil.mil.types.type_mapping import builtin_to_string

    return builtin_to_string(var.dtype)


@rescue(
    "alias",
    "coremltools 9.0 has no translation; torch.export keeps aten.alias (HF transformers 5.x decoder masks)",
)
def alias(context: Any, node: Any) -> None:
    """``torch.ops.aten.alias(x)``: the same values (a view; MIL values are immutable, so an identity)."""
    from coremltools.converters.mil.mil import Builder as mb

    x = frontend()._get_inputs(context, node, min_expected=1)[0]
    context.add(mb.identity(x=x, name=node.name), torch_name=node.name)


@rescue(
    "where.scalarother",
    "coremltools 9.0 has no translation for torch.export's scalar overloads of where (MPNet's masks)",
    aliases=("where.scalar",),
)
def where_scalar(context: Any, node: Any) -> None:
    """``torch.where(cond, a, b)`` where ``a`` and/or ``b`` is a Python scalar (``aten.where.ScalarOther`` etc.)."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types
    from coremltools.converters.mil.mil.types.type_mapping import builtin_to_string

    cond, a, b = frontend()._get_inputs(context, node, expected=3)
    if not types.is_bool(cond.dtype):
        cond = mb.cast(x=cond, dtype="bool")
    # torch: a tensor operand keeps its dtype against a Python scalar (a float scalar lifts an int tensor)
    tensors = [v for v in (a, b) if v.rank > 0] or [a]
    dtype = builtin_to_string(tensors[0].dtype)
    if any(types.is_float(v.dtype) for v in (a, b)) and not types.is_float(tensors[0].dtype):
        dtype = "fp32"
    a, b = (v if builtin_to_string(v.dtype) == dtype else mb.cast(x=v, dtype=dtype) for v in (a, b))
    context.add(select(cond=cond, a=a, b=b, name=node.name), torch_name=node.name)


@rescue(
    "where.scalarself",
    "override: coremltools 9.0's where.ScalarSelf selects between an int scalar and a float tensor and fails "
    "(torch.where(mask, 0, x) on torch.export; F.hardshrink decomposes to it)",
    override=True,
)
def where_scalar_self(context: Any, node: Any) -> None:
    """``torch.where(cond, scalar, x)``: the scalar in ``x``'s dtype (see :func:`where_scalar`)."""
    where_scalar(context, node)


@rescue(
    "channel_shuffle",
    "coremltools 9.0 has no translation (nn.ChannelShuffle, ShuffleNet-style blocks)",
    aliases=("native_channel_shuffle",),
)
def channel_shuffle(context: Any, node: Any) -> None:
    """``F.channel_shuffle(x, groups)``: channels (g, C/g) transposed to (C/g, g), any rank >= 3."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic

    x, groups_var = frontend()._get_inputs(context, node, expected=2)
    groups = int(const_value(groups_var))
    if any_symbolic(x.shape[1:2]):
        raise NotImplementedError("channel_shuffle needs a static channel count")
    channels = int(x.shape[1])
    shape = mb.shape(x=x)
    batch = mb.slice_by_index(x=shape, begin=[0], end=[1])
    spatial = mb.slice_by_index(x=shape, begin=[2], end=[x.rank])
    split = np.array([groups, channels // groups], dtype=np.int32)
    grouped = mb.reshape(x=x, shape=mb.concat(values=[batch, split, spatial], axis=0))
    swapped = mb.transpose(x=grouped, perm=[0, 2, 1, *range(3, x.rank + 1)])
    context.add(mb.reshape(x=swapped, shape=shape, name=node.name), torch_name=node.name)


@rescue(
    "clamp",
    "coremltools 9.0 fails on tensor bounds (torch.clamp(x, min=tensor)); scalar bounds keep its translation",
    override=True,
    aliases=("clip",),
)
def clamp(context: Any, node: Any) -> None:
    """``torch.clamp(x, min, max)``: tensor bounds (broadcast), one bound, and integer ``x`` (kept integer) as
    ``maximum`` / ``minimum``; float ``x`` with two scalar bounds by coremltools' own ``clip``."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types
    from coremltools.converters.mil.mil.types.type_mapping import builtin_to_string

    ops = frontend()
    inputs = ops._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    low = arg(context, node, inputs, 1, "min")
    high = arg(context, node, inputs, 2, "max")
    scalar = all(b is None or b.rank == 0 or (b.val is not None and np.size(b.val) == 1) for b in (low, high))
    float_bound = any(b is not None and not types.is_int(b.dtype) for b in (low, high))
    one_sided = low is None or high is None
    if scalar and not one_sided and (not types.is_int(x.dtype) or float_bound):
        ops.clamp(context, node)  # two scalar bounds (a float one promotes x in torch): coremltools' clip
        return
    # NOTE: one bound: coremltools' clip fills the other with the fp32 extreme, so clamp(-inf, max=6) was
    # -3.4e38 (PyTorch -inf); maximum / minimum keep the unbounded side as it is
    # NOTE: tensor bounds, or an integer x: coremltools' clip casts integers to fp32, so clamped indices
    # (one_hot(ids.clamp(max=n - 1), n), a gather) failed to convert at the op reading them
    out = mb.cast(x=x, dtype="fp32") if types.is_int(x.dtype) and float_bound else x  # torch promotes
    for bound, op in ((low, mb.maximum), (high, mb.minimum)):
        if bound is not None:
            if bound.dtype != out.dtype:
                bound = mb.cast(x=bound, dtype=builtin_to_string(out.dtype))
            out = op(x=out, y=bound)
    context.add(mb.identity(x=out, name=node.name), torch_name=node.name)


@rescue(
    "tensor_split",
    "coremltools 9.0 has no translation (torch.tensor_split on TorchScript; torch.export decomposes it)",
    aliases=("tensor_split.sections", "tensor_split.indices"),
)
def tensor_split(context: Any, node: Any) -> None:
    """``torch.tensor_split(x, sections | indices, dim)`` as one MIL ``split`` with PyTorch's static sizes: ``n``
    sections give ``L % n`` pieces of ``L // n + 1`` then ``L // n``; indices cut at each (clamped to ``[0, L]``).
    An empty piece (a section count above ``L``, repeated indices) is refused: Core ML has no empty tensors."""
    inputs = frontend()._get_inputs(context, node, min_expected=2)
    dim = int(const_value(inputs[2], 0)) if len(inputs) > 2 else 0
    _split(context, node, inputs[0], np.asarray(const_value(inputs[1])), dim)


def _split(context: Any, node: Any, x: Any, split: np.ndarray, dim: int) -> None:
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.symbolic import is_symbolic

    dim %= max(x.rank, 1)
    length = x.shape[dim]
    if is_symbolic(length) or split.dtype.kind not in "iu":
        raise NotImplementedError(
            "torch.tensor_split needs a static axis length and constant sections / indices"
        )
    length = int(length)
    if split.ndim == 0:
        count = int(split)
        sizes = [length // count + (1 if i < length % count else 0) for i in range(count)]
    else:
        cuts = [min(max(int(c) if c >= 0 else int(c) + length, 0), length) for c in split.ravel()]
        bounds = [0, *cuts, length]
        sizes = [max(b - a, 0) for a, b in itertools.pairwise(bounds)]
    if min(sizes) <= 0:
        raise NotImplementedError(
            f"torch.tensor_split into an empty piece (sizes {sizes}): Core ML has no empty tensor"
        )
    if len(sizes) == 1:
        context.add((mb.identity(x=x, name=node.name),), torch_name=node.name)
        return
    pieces = mb.split(x=x, split_sizes=np.array(sizes, dtype=np.int32), axis=dim, name=node.name)
    context.add(pieces, torch_name=node.name)


def _directional_split(axis_of_rank: Callable[[int], int], name: str) -> Callable[[Any, Any], None]:
    def translate(context: Any, node: Any) -> None:
        """``torch.{name}(x, sections | indices)``: ``tensor_split`` along its axis; a section count must divide
        the axis (PyTorch raises otherwise)."""
        from coremltools.converters.mil.mil.types.symbolic import is_symbolic

        inputs = frontend()._get_inputs(context, node, expected=2)
        x, split = inputs[0], np.asarray(const_value(inputs[1]))
        dim = axis_of_rank(x.rank)
        if split.ndim == 0 and not is_symbolic(x.shape[dim]) and int(x.shape[dim]) % int(split):
            raise ValueError(
                f"torch.{name}: {int(split)} sections do not divide the axis of {int(x.shape[dim])}"
            )
        _split(context, node, x, split, dim)

    return translate


for _name, _axis in (
    ("hsplit", lambda rank: 1 if rank > 1 else 0),
    ("vsplit", lambda rank: 0),
    ("dsplit", lambda rank: 2),
):
    rescue(
        _name,
        f"coremltools 9.0 has no translation (torch.{_name} on TorchScript; torch.export decomposes it)",
        aliases=(f"{_name}.int", f"{_name}.array"),
    )(_directional_split(_axis, _name))


def _eval_dropout(context: Any, node: Any) -> None:
    """``F.alpha_dropout`` / ``F.feature_alpha_dropout`` in eval mode (``nn.AlphaDropout`` of self-normalizing SELU
    nets): the input itself, as coremltools treats ``dropout``. In training mode (random) refused."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    train = const_value(arg(context, node, inputs, 2, "train"), None)
    if train is None or bool(train):
        raise NotImplementedError(
            f"{node.kind} in training mode (random): call model.eval() before converting"
        )
    context.add(mb.identity(x=inputs[0], name=node.name), torch_name=node.name)


for _name in ("alpha_dropout", "feature_alpha_dropout"):
    rescue(_name, f"coremltools 9.0 has no translation (F.{_name}, nn.AlphaDropout in eval mode)")(
        _eval_dropout
    )
