"""Matrix products coremltools 9.0 lacks: ``inner``, ``linalg_multi_dot`` / ``chain_matmul``,
``linalg_matrix_power`` and ``vander``.

Each is PyTorch's own sequence of products, so the rounding is PyTorch's up to the summation order inside one
``matmul``: multi_dot multiplies in the order PyTorch's cost model picks, matrix_power squares as PyTorch's binary
decomposition does.
"""

from __future__ import annotations

from typing import Any

from devicefit.convert.rescue._mil import arg, const_value, frontend
from devicefit.convert.rescue._registry import rescue
from devicefit.convert.rescue.linalg import _dtype_name, contract


@rescue("inner", "coremltools 9.0 has no translation (torch.inner)")
def inner(context: Any, node: Any) -> None:
    """``torch.inner(a, b)``: the sum over both last axes (``tensordot(a, b, ([-1], [-1]))``, PyTorch's own
    definition); a 0-d operand multiplies."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, expected=2)
    a, b = frontend().promote_input_dtypes([inputs[0], inputs[1]])
    out = mb.mul(x=a, y=b) if a.rank == 0 or b.rank == 0 else contract(a, b, [-1], [-1], "inner")
    context.add(mb.identity(x=out, name=node.name), torch_name=node.name)


def chain_order(sizes: list[int]) -> list[list[int]]:
    """PyTorch's ``matrix_chain_order``: ``split[i][j]`` is where the cheapest product of matrices ``i..j`` splits
    (matrix ``i`` being ``sizes[i] x sizes[i + 1]``; the first split of equal cost wins)."""
    n = len(sizes) - 1
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i][j] = 2**63 - 1
            for k in range(i, j):
                q = cost[i][k] + cost[k + 1][j] + sizes[i] * sizes[k + 1] * sizes[j + 1]
                if q < cost[i][j]:
                    cost[i][j], split[i][j] = q, k
    return split


def _chain(mats: list[Any], shapes: list[tuple[int, int]]) -> Any:
    """The product of ``mats`` (2-D) in PyTorch's order: two matrices directly, three by its cost comparison,
    more by :func:`chain_order`."""
    from coremltools.converters.mil.mil import Builder as mb

    if len(mats) == 1:
        return mats[0]
    if len(mats) == 2:
        return mb.matmul(x=mats[0], y=mats[1])
    if len(mats) == 3:
        (a, b), (_, c), (_, d) = shapes
        if (a * c) * (b + d) > (b * d) * (a + c):
            return mb.matmul(x=mats[0], y=mb.matmul(x=mats[1], y=mats[2]))
        return mb.matmul(x=mb.matmul(x=mats[0], y=mats[1]), y=mats[2])
    split = chain_order([s[0] for s in shapes] + [shapes[-1][1]])

    def product(i: int, j: int) -> Any:
        if i == j:
            return mats[i]
        return mb.matmul(x=product(i, split[i][j]), y=product(split[i][j] + 1, j))

    return product(0, len(mats) - 1)


@rescue(
    "linalg_multi_dot",
    "coremltools 9.0 has no translation (torch.linalg.multi_dot, torch.chain_matmul)",
    aliases=("chain_matmul",),
)
def linalg_multi_dot(context: Any, node: Any) -> None:
    """``torch.linalg.multi_dot(tensors)``: a 1-D first tensor is a row, a 1-D last one a column (squeezed after),
    multiplied in PyTorch's order; static shapes."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    mats = list(inputs[0]) if isinstance(inputs[0], list | tuple) else list(inputs)
    mats = frontend().promote_input_dtypes(mats)
    if any(any_symbolic(m.shape) for m in mats):
        raise NotImplementedError("multi_dot needs static shapes (the product order depends on them)")
    row, column = mats[0].rank == 1, len(mats) > 1 and mats[-1].rank == 1
    if row:
        mats[0] = mb.expand_dims(x=mats[0], axes=[0])
    if column:
        mats[-1] = mb.expand_dims(x=mats[-1], axes=[1])
    if any(m.rank != 2 for m in mats):
        raise ValueError("multi_dot takes 2-D tensors (the first and last may be 1-D)")
    shapes = [(int(m.shape[0]), int(m.shape[1])) for m in mats]
    out = _chain(mats, shapes)
    squeeze = [0] * row + [1] * column
    if squeeze:
        out = mb.squeeze(x=out, axes=squeeze) if len(squeeze) < 2 else mb.reshape(x=out, shape=[])
    context.add(mb.identity(x=out, name=node.name), torch_name=node.name)


@rescue("linalg_matrix_power", "coremltools 9.0 has no translation (torch.linalg.matrix_power)")
def linalg_matrix_power(context: Any, node: Any) -> None:
    """``A^n`` for a constant integer ``n``: PyTorch's sequence (``n = 2``: ``A A``; ``3``: ``(A A) A``; above, its
    binary decomposition: ``z`` squared per bit, multiplied into the result where the bit is set); ``n = 0`` the
    identity (NaN entries too); ``n < 0`` the same on devicefit's unrolled inverse (up to 32x32)."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    from devicefit.convert.rescue import lu

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    a = inputs[0]
    power = const_value(arg(context, node, inputs, 1, "n"), None)
    if power is None:
        raise NotImplementedError("matrix_power with an exponent computed at run time (make it a Python int)")
    if not types.is_float(a.dtype):
        raise NotImplementedError(
            "matrix_power of an integer matrix (Core ML matmul is float): cast it first"
        )
    n, power = lu._square_size(a, "matrix_power"), int(power)
    if power == 0:
        out = lu.identity_like(a, n)
    else:
        if power < 0:
            a, power = lu.inverse(a, n), -power
        if power == 1:
            out = a
        elif power == 2:
            out = mb.matmul(x=a, y=a)
        elif power == 3:
            out = mb.matmul(x=mb.matmul(x=a, y=a), y=a)
        else:
            z = result = None
            while power > 0:
                bit, power = power % 2, power // 2
                z = a if z is None else mb.matmul(x=z, y=z)
                if bit:
                    result = z if result is None else mb.matmul(x=result, y=z)
            out = result
    context.add(mb.identity(x=out, name=node.name), torch_name=node.name)


@rescue("vander", "coremltools 9.0 has no translation (torch.vander: polynomial features, decreasing powers)")
def vander(context: Any, node: Any) -> None:
    """``torch.vander(x, N=None, increasing=False)``: PyTorch's running product (``cumprod`` of ``x``), so the same
    roundings (bit-exact; ``x^0 = 1`` for NaN too), columns reversed unless ``increasing``; integers exact."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    if x.rank != 1:
        raise ValueError(f"vander takes a 1-D tensor (got rank {x.rank})")
    size = const_value(arg(context, node, inputs, 1, "N"), None)
    increasing = bool(const_value(arg(context, node, inputs, 2, "increasing"), False))
    count = int(size) if size is not None else int(x.shape[0])
    if count < 1:
        raise ValueError(f"vander: N must be at least 1 (got {count})")
    column = mb.expand_dims(x=x, axes=[-1])
    ones = mb.cast(x=mb.fill(shape=mb.shape(x=column), value=1.0), dtype=_dtype_name(x))
    columns = [ones]
    for _ in range(count - 1):
        columns.append(column if len(columns) == 1 else mb.mul(x=columns[-1], y=column))
    if not increasing:
        columns.reverse()
    out = mb.concat(values=columns, axis=-1) if len(columns) > 1 else ones
    context.add(mb.identity(x=out, name=node.name), torch_name=node.name)
