"""Shape rules of PyTorch that coremltools 9.0 refuses: ``x.mT`` / ``x.mH``, ``torch.gather`` with an index
smaller than the input on the other axes, ``torch.tile`` with more reps than the input has axes,
``torch.repeat_interleave`` with a constant tensor of differing repeats.

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


@rescue(
    "repeat_interleave",
    "override: coremltools 9.0 refuses torch.repeat_interleave with a tensor of differing repeats (a constant "
    "one: every output row is known at conversion); scalar or uniform repeats stay with coremltools",
    override=True,
    aliases=("repeat_interleave.self_tensor",),
)
def repeat_interleave(context: Any, node: Any) -> object:
    """``torch.repeat_interleave(x, repeats, dim)`` with a constant tensor of repeats: one ``gather`` of the rows
    ``np.repeat(arange(n), repeats)`` along ``dim`` (``x`` flattened first without ``dim``). Repeats computed at
    run time are refused: the output's length depends on their values, and Core ML needs it at conversion."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    x, repeats = inputs[0], inputs[1]
    dim_var = (
        inputs[2] if len(inputs) > 2 else frontend()._get_kwinputs(context, node, "dim", default=[None])[0]
    )
    values = None if not hasattr(repeats, "val") else repeats.val
    if hasattr(repeats, "rank") and repeats.rank > 0 and values is None:
        raise NotImplementedError(
            # NOTE: the scan shows 240 characters of it; the rewrite serves repeats the model predicts (durations)
            "repeat_interleave with repeats computed at run time: its length depends on their values; use constant "
            "repeats, or max_len rows masked past the sum: x[torch.searchsorted(repeats.cumsum(0), "
            "torch.arange(max_len), right=True).clamp(max=n - 1)]"
        )
    if values is None or np.asarray(values).size <= 1 or np.all(np.asarray(values) == np.ravel(values)[0]):
        frontend().repeat_interleave(context, node)
        return DELEGATED
    counts = np.asarray(values, dtype=np.int64).ravel()
    dim = const_value(dim_var)
    if dim is None:
        x, axis = mb.reshape(x=x, shape=[-1]), 0
    else:
        axis = int(dim) % max(x.rank, 1)
    size = x.shape[axis]
    if not _static(size) or int(size) != counts.size:
        raise ValueError(f"repeat_interleave: {counts.size} repeats for an axis of size {size}")
    if counts.sum() == 0:
        raise NotImplementedError(
            "repeat_interleave with all repeats 0 makes an empty tensor (Core ML has none)"
        )
    rows = np.repeat(np.arange(counts.size, dtype=np.int32), counts)
    context.add(mb.gather(x=x, indices=rows, axis=axis, name=node.name), torch_name=node.name)
    return None
