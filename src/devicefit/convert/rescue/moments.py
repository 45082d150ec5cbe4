"""``torch.var_mean`` / ``torch.std_mean`` (hand-written norm layers), which coremltools 9.0 cannot translate, and
``torch.var`` / ``torch.std`` with a ``correction`` other than 0 or 1, which it translates as ``unbiased=True``."""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import frontend
from devicefit.convert.rescue._registry import rescue


def _arguments(context: Any, node: Any) -> tuple[Any, Any, float, bool]:
    """(x, dim, correction, keepdim) of a var / std / var_mean / std_mean node.

    TorchScript passes ``(x, unbiased)``, ``(x, dim, unbiased, keepdim)`` or ``(x, dim, correction, keepdim)``
    (a bool ``unbiased`` is correction 1 or 0); torch.export passes ``correction`` / ``keepdim`` as keywords.
    """
    ops = frontend()
    inputs = ops._get_inputs(context, node, min_expected=1)
    values = [v.val if hasattr(v, "val") else v for v in inputs[1:]]
    dim, correction, keepdim = None, 1.0, False
    if len(values) == 1 and isinstance(values[0], bool | np.bool_):  # var_mean(x, unbiased): no dim
        correction = float(bool(values[0]))
    elif values:
        dim = values[0]
        if len(values) > 1 and values[1] is not None:
            correction = float(values[1])  # True / False -> 1.0 / 0.0
        keepdim = bool(values[2]) if len(values) > 2 and values[2] is not None else False
    for name in ("correction", "keepdim", "unbiased"):
        found = ops._get_kwinputs(context, node, name, default=[None])[0]
        if found is not None and getattr(found, "val", None) is not None:
            if name == "keepdim":
                keepdim = bool(found.val)
            else:
                correction = float(found.val)
    return inputs[0], dim, correction, keepdim


def _moments(context: Any, node: Any, root: bool, single: bool = False) -> None:
    """Both outputs of ``var_mean`` / ``std_mean`` (``single``: the first only, for ``var`` / ``std``):
    ``sum((x - mean)^2) / (N - correction)`` and the mean. ``N`` (the elements reduced) must be static.
    """
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic

    x, dim, correction, keepdim = _arguments(context, node)
    axes = list(range(x.rank)) if dim is None or np.size(dim) == 0 else [int(d) for d in np.atleast_1d(dim)]
    reduced = [x.shape[a] for a in axes]
    if any_symbolic(reduced):
        raise NotImplementedError(f"{node.kind} over axes of flexible size (give them a fixed size)")
    count = float(np.prod(reduced))
    mean = mb.reduce_mean(x=x, axes=axes, keep_dims=True)
    spread = mb.reduce_sum(x=mb.square(x=mb.sub(x=x, y=mean)), axes=axes, keep_dims=keepdim)
    var = mb.real_div(x=spread, y=max(count - correction, 0.0))
    first = mb.sqrt(x=var) if root else var
    if single:
        context.add(mb.identity(x=first, name=node.name), torch_name=node.name)
        return
    if not keepdim:
        mean = mb.reduce_mean(x=x, axes=axes, keep_dims=False)
    if len(node.outputs) > 1:  # TorchScript: one name per output
        context.add(mb.identity(x=first, name=node.outputs[0]), torch_name=node.outputs[0])
        context.add(mb.identity(x=mean, name=node.outputs[1]), torch_name=node.outputs[1])
    else:  # torch.export: a tuple its getitem nodes index (as coremltools adds topk's)
        context.add((first, mean), torch_name=node.name)


@rescue(
    "var_mean",
    "coremltools 9.0 has no translation (torch.var_mean in hand-written norm layers)",
    aliases=("var_mean.dim", "var_mean.correction"),
)
def var_mean(context: Any, node: Any) -> None:
    _moments(context, node, root=False)


@rescue(
    "std_mean",
    "coremltools 9.0 has no translation (torch.std_mean)",
    aliases=("std_mean.dim", "std_mean.correction"),
)
def std_mean(context: Any, node: Any) -> None:
    _moments(context, node, root=True)


def _var_or_std(context: Any, node: Any, root: bool) -> object:
    """``torch.var`` / ``torch.std`` as ``sum((x - mean)^2) / (N - correction)``; reductions over axes of flexible
    size go to coremltools' translation.

    coremltools reads a ``correction`` as ``unbiased`` (any c != 0 divides by N - 1; found by the differential
    fuzzer, tests/interp/difffuzz.py, seed 2394: ``std(x, correction=2)``), reads TorchScript's
    ``std(x)`` (``(x, None, None, False)``) as biased, and refuses torch.export's ``var.correction``."""
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic

    from devicefit.convert.rescue._registry import DELEGATED

    x, dim, _, _ = _arguments(context, node)
    axes = list(range(x.rank)) if dim is None or np.size(dim) == 0 else [int(d) for d in np.atleast_1d(dim)]
    if any_symbolic([x.shape[a] for a in axes]):
        (frontend().std if root else frontend().var)(context, node)
        return DELEGATED
    _moments(context, node, root, single=True)
    return None


@rescue(
    "var",
    "override: coremltools 9.0 reads var(correction=c) as unbiased (N - 1 for every c != 0), TorchScript's var(x) "
    "as biased, and refuses torch.export's var.correction: wrong values, no error",
    override=True,
    aliases=("var.dim", "var.correction"),
)
def var(context: Any, node: Any) -> object:
    return _var_or_std(context, node, root=False)


@rescue(
    "std",
    "override: coremltools 9.0 reads std(correction=c) as unbiased (N - 1 for every c != 0), TorchScript's std(x) "
    "as biased, and refuses torch.export's std.correction: wrong values, no error",
    override=True,
    aliases=("std.dim", "std.correction"),
)
def std(context: Any, node: Any) -> object:
    return _var_or_std(context, node, root=True)
