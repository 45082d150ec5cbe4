"""Products coremltools 9.0 lacks: ``tensordot``, ``kron``, ``addmv``, ``addr``, ``linalg_cross``,
``linalg_vander``, ``block_diag``.

Each is laid out on MIL ``matmul`` / ``mul`` / ``concat`` with static shapes (the layouts are computed at
conversion time); a flexible size on an axis the layout depends on is refused with the op's name.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, frontend
from devicefit.convert.rescue._registry import rescue


def _shape(var: Any, what: str) -> list[int]:
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic

    if any_symbolic(var.shape):
        raise NotImplementedError(f"{what} needs static shapes (got {tuple(var.shape)})")
    return [int(d) for d in var.shape]


def _int_list(value: Any) -> list[int]:
    value = const_value(value)
    return [int(v) for v in np.atleast_1d(np.asarray(value))]


def _dtype_name(var: Any) -> str:
    from coremltools.converters.mil.mil.types.type_mapping import builtin_to_string

    return builtin_to_string(var.dtype)


@rescue("tensordot", "coremltools 9.0 has no translation (torch.tensordot)")
def tensordot(context: Any, node: Any) -> None:
    """``torch.tensordot(a, b, dims)``: ``a``'s free axes then its contracted ones, ``b``'s contracted axes
    then its free ones, each flattened to a matrix, one ``matmul`` and a reshape (as PyTorch computes it)."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    a, b = frontend().promote_input_dtypes([inputs[0], inputs[1]])
    dims_a = _int_list(arg(context, node, inputs, 2, "dims_self"))
    dims_b = _int_list(arg(context, node, inputs, 3, "dims_other"))
    context.add(
        mb.identity(x=contract(a, b, dims_a, dims_b, "tensordot"), name=node.name), torch_name=node.name
    )


def contract(a: Any, b: Any, dims_a: list[int], dims_b: list[int], what: str) -> Any:
    """``a`` and ``b`` summed over the paired axes ``dims_a`` / ``dims_b``: ``a``'s free axes then its contracted
    ones, ``b``'s contracted axes then its free ones, each flattened to a matrix, one ``matmul`` and a reshape (as
    PyTorch's ``tensordot`` computes it); static shapes."""
    from coremltools.converters.mil.mil import Builder as mb

    dims_a = [d % max(a.rank, 1) for d in dims_a]
    dims_b = [d % max(b.rank, 1) for d in dims_b]
    shape_a, shape_b = _shape(a, what), _shape(b, what)
    if [shape_a[d] for d in dims_a] != [shape_b[d] for d in dims_b]:
        raise ValueError(
            f"{what}: contracted sizes differ ({shape_a} dims {dims_a}, {shape_b} dims {dims_b})"
        )
    free_a = [d for d in range(a.rank) if d not in dims_a]
    free_b = [d for d in range(b.rank) if d not in dims_b]
    size = math.prod(shape_a[d] for d in dims_a)
    if free_a + dims_a != list(range(a.rank)):
        a = mb.transpose(x=a, perm=free_a + dims_a)
    if dims_b + free_b != list(range(b.rank)):
        b = mb.transpose(x=b, perm=dims_b + free_b)
    left = mb.reshape(x=a, shape=[math.prod(shape_a[d] for d in free_a), size])
    right = mb.reshape(x=b, shape=[size, math.prod(shape_b[d] for d in free_b)])
    out_shape = [shape_a[d] for d in free_a] + [shape_b[d] for d in free_b]
    out = mb.reshape(x=mb.matmul(x=left, y=right), shape=out_shape or [1])
    return mb.squeeze(x=out) if not out_shape else out


@rescue("kron", "coremltools 9.0 has no translation (torch.kron: Kronecker products, structured weights)")
def kron(context: Any, node: Any) -> None:
    """``torch.kron(a, b)``: entry ``(i0 b0 + j0, i1 b1 + j1, ...)`` is ``a[i] * b[j]`` (the lower rank padded with
    leading 1s); exact. Up to rank 2: ``a`` as ``(a0, 1, a1, 1)`` times ``b`` as ``(1, b0, 1, b1)``, reshaped;
    above (an interleaved layout would pass Core ML's rank limit of 5): two gathers of constant position tables
    and one product."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, expected=2)
    a, b = frontend().promote_input_dtypes([inputs[0], inputs[1]])
    rank = max(a.rank, b.rank)
    shape_a = [1] * (rank - a.rank) + _shape(a, "kron")
    shape_b = [1] * (rank - b.rank) + _shape(b, "kron")
    out_shape = [x * y for x, y in zip(shape_a, shape_b)]
    if rank <= 2:
        spread_a = mb.reshape(x=a, shape=[s for d in shape_a for s in (d, 1)] or [1])
        spread_b = mb.reshape(x=b, shape=[s for d in shape_b for s in (1, d)] or [1])
        out = mb.mul(x=spread_a, y=spread_b)
    else:
        position = np.indices(out_shape).reshape(rank, -1)  # every output position's multi-index
        size_b = np.array(shape_b)[:, None]
        where_a = np.ravel_multi_index(tuple(position // size_b), shape_a).astype(np.int32)
        where_b = np.ravel_multi_index(tuple(position % size_b), shape_b).astype(np.int32)
        flat_a, flat_b = mb.reshape(x=a, shape=[-1]), mb.reshape(x=b, shape=[-1])
        out = mb.mul(
            x=mb.gather(x=flat_a, indices=where_a, axis=0), y=mb.gather(x=flat_b, indices=where_b, axis=0)
        )
    out = mb.reshape(x=out, shape=out_shape or [1])
    if not out_shape:
        out = mb.squeeze(x=out)
    context.add(mb.identity(x=out, name=node.name), torch_name=node.name)


def _scaled_sum(base: Any, product: Any, beta: float, alpha: float, name: str) -> Any:
    """``beta * base + alpha * product``; ``beta = 0`` ignores ``base`` (NaN in it does not spread, as in
    PyTorch)."""
    from coremltools.converters.mil.mil import Builder as mb

    if alpha != 1:
        product = mb.mul(x=product, y=float(alpha))
    if beta == 0:  # the result has the product's shape (input only broadcasts to it)
        return mb.identity(x=product, name=name)
    if beta != 1:
        base = mb.mul(x=base, y=float(beta))
    return mb.add(x=base, y=product, name=name)


@rescue("addmv", "coremltools 9.0 has no translation (torch.addmv: beta * input + alpha * mat @ vec)")
def addmv(context: Any, node: Any) -> None:
    """``torch.addmv(input, mat, vec, beta=1, alpha=1)``: one ``matmul`` and the scaled sum."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=3)
    base, mat, vec = frontend().promote_input_dtypes(list(inputs[:3]))
    beta = float(const_value(arg(context, node, inputs, 3, "beta"), 1))
    alpha = float(const_value(arg(context, node, inputs, 4, "alpha"), 1))
    # NOTE: MIL matmul's type inference fails on a rank-1 y: a column, then squeezed
    product = mb.squeeze(x=mb.matmul(x=mat, y=mb.expand_dims(x=vec, axes=[-1])), axes=[-1])
    context.add(_scaled_sum(base, product, beta, alpha, node.name), torch_name=node.name)


@rescue("addr", "coremltools 9.0 has no translation (torch.addr: beta * input + alpha * outer(v1, v2))")
def addr(context: Any, node: Any) -> None:
    """``torch.addr(input, vec1, vec2, beta=1, alpha=1)``: ``vec1[:, None] * vec2[None, :]`` and the scaled sum."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=3)
    base, vec1, vec2 = frontend().promote_input_dtypes(list(inputs[:3]))
    beta = float(const_value(arg(context, node, inputs, 3, "beta"), 1))
    alpha = float(const_value(arg(context, node, inputs, 4, "alpha"), 1))
    product = mb.mul(x=mb.expand_dims(x=vec1, axes=[1]), y=mb.expand_dims(x=vec2, axes=[0]))
    context.add(_scaled_sum(base, product, beta, alpha, node.name), torch_name=node.name)


@rescue("linalg_cross", "coremltools 9.0 has no translation (torch.linalg.cross; torch.cross converts)")
def linalg_cross(context: Any, node: Any) -> None:
    """``torch.linalg.cross(a, b, dim=-1)``: ``a[[1, 2, 0]] * b[[2, 0, 1]] - a[[2, 0, 1]] * b[[1, 2, 0]]`` along
    ``dim``, broadcasting size-1 axes (PyTorch's vectorized kernel rounds the difference of products
    differently: within one ulp of the products)."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    a, b = frontend().promote_input_dtypes([inputs[0], inputs[1]])
    rank = max(a.rank, b.rank)
    dim = int(const_value(arg(context, node, inputs, 2, "dim"), -1))
    if a.rank != b.rank:
        raise ValueError(f"linalg_cross: inputs of rank {a.rank} and {b.rank} (PyTorch requires equal ranks)")
    dim %= rank
    if a.shape[dim] != 3 or b.shape[dim] != 3:
        raise ValueError(f"linalg_cross: dim {dim} must have size 3 (got {a.shape[dim]} and {b.shape[dim]})")
    after, before = np.array([1, 2, 0], np.int32), np.array([2, 0, 1], np.int32)
    first = mb.mul(x=mb.gather(x=a, indices=after, axis=dim), y=mb.gather(x=b, indices=before, axis=dim))
    second = mb.mul(x=mb.gather(x=a, indices=before, axis=dim), y=mb.gather(x=b, indices=after, axis=dim))
    context.add(mb.sub(x=first, y=second, name=node.name), torch_name=node.name)


@rescue("linalg_vander", "coremltools 9.0 has no translation (torch.linalg.vander: polynomial features)")
def linalg_vander(context: Any, node: Any) -> None:
    """``torch.linalg.vander(x, N=None)``: columns ``x^0 .. x^(N-1)``. Floats as PyTorch computes them, MIL
    ``pow`` of ``x`` with the exponents (``x^0 = 1`` for NaN too); integers as a running product (exact)."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    size = const_value(arg(context, node, inputs, 1, "N"), None)
    count = int(size) if size is not None else _shape(x, "linalg_vander")[-1]
    if count <= 1:
        raise ValueError(f"linalg_vander: N must be greater than 1 (got {count})")
    column = mb.expand_dims(x=x, axes=[-1])
    if types.is_float(x.dtype):
        out = mb.pow(x=column, y=np.arange(count, dtype=_np(x)))
    else:
        ones = mb.cast(x=mb.fill(shape=mb.shape(x=column), value=1.0), dtype=_dtype_name(x))
        columns = [ones, column]
        for _ in range(count - 2):
            columns.append(mb.mul(x=columns[-1], y=column))
        out = mb.concat(values=columns, axis=-1)
    context.add(mb.identity(x=out, name=node.name), torch_name=node.name)


def _np(var: Any) -> Any:
    from coremltools.converters.mil.mil.types.type_mapping import nptype_from_builtin

    return nptype_from_builtin(var.dtype)


@rescue("block_diag", "coremltools 9.0 has no translation (torch.block_diag)")
def block_diag(context: Any, node: Any) -> None:
    """``torch.block_diag(*tensors)``: each block padded with zeros left and right to the total width, the rows
    concatenated (0-d and 1-d blocks are ``(1, 1)`` / ``(1, n)`` rows, as in PyTorch); static shapes."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    blocks = list(inputs[0]) if isinstance(inputs[0], list | tuple) else list(inputs)
    blocks = frontend().promote_input_dtypes(blocks)
    shaped = []
    for block in blocks:
        shape = _shape(block, "block_diag")
        if len(shape) > 2:
            raise ValueError(f"block_diag takes tensors of rank 2 or less (got rank {len(shape)})")
        rows, cols = [1, 1] if not shape else [1, shape[0]] if len(shape) == 1 else shape
        shaped.append((mb.reshape(x=block, shape=[rows, cols]) if len(shape) != 2 else block, rows, cols))
    width = sum(cols for _, _, cols in shaped)
    dtype = _np(blocks[0])
    bands, left = [], 0
    for block, rows, cols in shaped:
        parts = []
        if left:
            parts.append(np.zeros((rows, left), dtype))
        parts.append(block)
        if width - left - cols:
            parts.append(np.zeros((rows, width - left - cols), dtype))
        bands.append(mb.concat(values=parts, axis=1) if len(parts) > 1 else block)
        left += cols
    out = mb.concat(values=bands, axis=0) if len(bands) > 1 else bands[0]
    context.add(mb.identity(x=out, name=node.name), torch_name=node.name)


@rescue("addbmm", "coremltools 9.0 has no translation (torch.addbmm: a sum of batched matmuls)")
def addbmm(context: Any, node: Any) -> None:
    """``beta * input + alpha * sum_b(b1[b] @ b2[b])``: one batched ``matmul`` reduced over the batch; ``beta = 0``
    ignores ``input`` (NaN in it too), as PyTorch."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=3)
    bias, b1, b2 = inputs[:3]
    beta = float(const_value(arg(context, node, inputs, 3, "beta"), 1.0))
    alpha = float(const_value(arg(context, node, inputs, 4, "alpha"), 1.0))
    product = mb.reduce_sum(x=mb.matmul(x=b1, y=b2), axes=[0], keep_dims=False)
    if alpha != 1.0:
        product = mb.mul(x=product, y=alpha)
    out = product if beta == 0.0 else mb.add(x=product, y=bias if beta == 1.0 else mb.mul(x=bias, y=beta))
    context.add(mb.identity(x=out, name=node.name), torch_name=node.name)


@rescue("dist", "coremltools 9.0 has no translation (torch.dist: the p-norm of a difference)")
def dist(context: Any, node: Any) -> None:
    """``torch.dist(a, b, p)``: the p-norm of ``a - b`` over every element: p = 0 (count of nonzeros), 1, 2, inf
    (TorchScript's constant ``inf`` arrives as 3.4e38) or any p > 0."""
    from coremltools.converters.mil.mil import Builder as mb

    ops = frontend()
    inputs = ops._get_inputs(context, node, min_expected=2)
    a, b = ops.promote_input_dtypes(inputs[:2])
    p = float(const_value(arg(context, node, inputs, 2, "p"), 2.0))
    d = mb.abs(x=mb.reshape(x=mb.sub(x=a, y=b), shape=[-1]))
    if p == 0.0:
        out = mb.reduce_sum(x=mb.cast(x=mb.not_equal(x=d, y=0.0), dtype="fp32"), axes=[0], keep_dims=False)
    elif p >= 3.3e38:
        out = mb.reduce_max(x=d, axes=[0], keep_dims=False)
    elif p == 1.0:
        out = mb.reduce_sum(x=d, axes=[0], keep_dims=False)
    elif p == 2.0:
        out = mb.sqrt(x=mb.reduce_sum(x=mb.mul(x=d, y=d), axes=[0], keep_dims=False))
    else:
        out = mb.pow(x=mb.reduce_sum(x=mb.pow(x=d, y=p), axes=[0], keep_dims=False), y=1.0 / p)
    context.add(mb.identity(x=out, name=node.name), torch_name=node.name)


@rescue("vdot", "coremltools 9.0 has no translation (parametrizations.spectral_norm's sigma = vdot(u, W v))")
def vdot(context: Any, node: Any) -> None:
    """``torch.vdot(a, b)`` of real vectors: ``dot(a, b)`` (vdot conjugates ``a``, a no-op for real values)."""
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY
    from coremltools.converters.mil.mil import types

    inputs = frontend()._get_inputs(context, node, expected=2)
    if any(types.is_complex(v.dtype) for v in inputs):
        raise NotImplementedError("vdot of complex vectors")
    kind = node.kind
    node.kind = "dot"
    try:
        _TORCH_OPS_REGISTRY.get_func("dot")(context, node)
    finally:
        node.kind = kind
