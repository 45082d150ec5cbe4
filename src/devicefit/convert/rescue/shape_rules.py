"""Shape rules of PyTorch that coremltools 9.0 refuses: ``x.mT`` / ``x.mH``, ``torch.gather`` with an index
smaller than the input on the other axes, ``torch.tile`` with more reps than the input has axes.

Found by the differential fuzzer (tests/interp/difffuzz.py); each used to be a conversion refusal naming the op.
All are data movement, so every result is exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import const_value, frontend
from devicefit.convert.rescue._registry import DELEGATED, rescue


@rescue("mt", "coremltools 9.0 has no translation of the x.mT attribute (the last two axes swapped)")
def matrix_transpose(context: Any, node: Any) -> None:
    """``x.mT`` (and ``x.mH``, the same for real tensors): a transpose of the last two axes."""
    from coremltools.converters.mil.mil import Builder as mb

    x = frontend()._get_inputs(context, node, min_expected=1)[0]
    if x.rank < 2:
        raise ValueError(f"x.mT needs at least 2 dimensions, got a tensor of rank {x.rank}")
    perm = [*range(x.rank - 2), x.rank - 1, x.rank - 2]
    context.add(mb.transpose(x=x, perm=perm, name=node.name), torch_name=node.name)


rescue("mh", "coremltools 9.0 has no translation of x.mH (for real tensors, x.mT)")(matrix_transpose)


@rescue(
    "gather",
    "override: coremltools 9.0 refuses torch.gather with an index smaller than the input on the other axes "
    "(PyTorch reads only the index's extent there); an index of the input's size stays with coremltools",
    override=True,
)
def gather(context: Any, node: Any) -> object:
    """``torch.gather(x, dim, index)``: ``x`` cut to ``index``'s size on every other axis, then MIL's
    ``gather_along_axis`` (PyTorch's ``out[i][j] = x[index[i][j]][j]`` reads only those positions). Static
    shapes."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=3)
    x, index = inputs[0], inputs[2]
    dim = int(const_value(inputs[1]))
    axis = dim % x.rank
    sizes = [(int(a), int(b)) for a, b in zip(x.shape, index.shape) if _static(a) and _static(b)]
    if (
        len(sizes) != x.rank
        or x.rank != index.rank
        or all(a == b for k, (a, b) in enumerate(sizes) if k != axis)
    ):
        frontend().gather(context, node)
        return DELEGATED
    end = [b if k != axis else a for k, (a, b) in enumerate(sizes)]
    cut = mb.slice_by_index(x=x, begin=[0] * x.rank, end=end)
    context.add(mb.gather_along_axis(x=cut, indices=index, axis=axis, name=node.name), torch_name=node.name)
    return None


@rescue(
    "tile",
    "override: coremltools 9.0 refuses torch.tile with more reps than the input has axes (PyTorch adds leading "
    "axes of size 1); other reps stay with coremltools",
    override=True,
)
def tile(context: Any, node: Any) -> object:
    """``torch.tile(x, reps)`` with ``len(reps) > x.dim()``: ``x`` given leading axes of size 1, then MIL ``tile``."""
    from coremltools.converters.mil.mil import Builder as mb

    x, reps = frontend()._get_inputs(context, node, expected=2)
    values = const_value(reps)
    if values is None or np.asarray(values).size <= x.rank:
        frontend().tile(context, node)
        return DELEGATED
    reps_list = [int(r) for r in np.asarray(values).ravel()]
    x = mb.expand_dims(x=x, axes=list(range(len(reps_list) - x.rank)))
    context.add(mb.tile(x=x, reps=reps_list, name=node.name), torch_name=node.name)
    return None


def _static(d: Any) -> bool:
    return isinstance(d, int | np.integer)
