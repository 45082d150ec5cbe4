"""Activations coremltools 9.0 mishandles: per-channel ``prelu`` on inputs of rank other than 4."""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import frontend
from devicefit.convert.rescue._registry import DELEGATED, rescue


@rescue(
    "prelu",
    "coremltools 9.0 rejects per-channel alpha on rank 2, 3 and 5 inputs (PReLU after a Linear, as in MTCNN)",
    override=True,
    aliases=("_prelu_kernel",),
)
def prelu(context: Any, node: Any) -> None:
    """``F.prelu(x, alpha)``: alpha per channel (dim 1), or one alpha; any rank.

    Rank 4 with a constant alpha keeps MIL's ``prelu`` (one op on the Neural Engine); other ranks take
    ``relu(x) + alpha * min(x, 0)`` with alpha broadcast along dim 1, which MIL's ``prelu`` cannot express.
    """
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.type_mapping import nptype_from_builtin

    x, alpha = frontend()._get_inputs(context, node, expected=2)
    channels = int(x.shape[1]) if x.rank >= 2 and not _symbolic(x.shape[1]) else None
    if alpha.val is not None:
        values = np.ravel(alpha.val).astype(nptype_from_builtin(x.dtype))
        if x.rank == 4 and channels is not None:
            per_channel = np.broadcast_to(values, (channels,)).copy()
            context.add(mb.prelu(x=x, alpha=per_channel, name=node.name), torch_name=node.name)
            return
        shape = [1] * x.rank
        if values.size > 1:
            shape[1] = values.size
        slope: Any = values.reshape(shape) if x.rank else values.reshape(())
    else:
        slope = alpha
        if x.rank >= 2 and alpha.rank == 1:
            slope = mb.reshape(x=alpha, shape=[1, -1] + [1] * (x.rank - 2))
    negative = mb.mul(x=mb.minimum(x=x, y=np.array(0, dtype=nptype_from_builtin(x.dtype))), y=slope)
    context.add(mb.add(x=mb.relu(x=x), y=negative, name=node.name), torch_name=node.name)


def _symbolic(dim: Any) -> bool:
    from coremltools.converters.mil.mil.types.symbolic import is_symbolic

    return bool(is_symbolic(dim))


@rescue(
    "gelu",
    "override: on torch.export coremltools reads only positional inputs, so nn.GELU(approximate='tanh') (a keyword "
    "there) became the exact erf GELU: 2e-3 off, silently",
    override=True,
)
def gelu(context: Any, node: Any) -> object:
    """``F.gelu(x, approximate="tanh")`` given as a keyword (torch.export): MIL ``gelu`` in its tanh mode. Every
    other GELU (positional arguments, the exact form) is coremltools' own translation."""
    from coremltools.converters.mil.mil import Builder as mb

    from devicefit.convert.rescue._mil import arg, const_value

    ops = frontend()
    inputs = ops._get_inputs(context, node, min_expected=1)
    approximate = str(const_value(arg(context, node, inputs, 1, "approximate"), "none"))
    if len(inputs) > 1 or approximate != "tanh":
        ops.gelu(context, node)
        return DELEGATED
    context.add(mb.gelu(x=inputs[0], mode="TANH_APPROXIMATION", name=node.name), torch_name=node.name)
    return None
