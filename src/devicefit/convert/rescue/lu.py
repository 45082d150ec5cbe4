"""Determinants, linear solves and factorizations, which coremltools 9.0 lacks (``det``, ``slogdet``, ``logdet``,
``solve``, ``inv`` of a matrix computed at run time, ``cholesky``, ``solve_triangular``).

Core ML has no LU factorization. For a static matrix size ``n`` up to :data:`MAX_SIZE`, Gaussian elimination with
partial pivoting (LAPACK ``getrf``'s algorithm, which PyTorch calls) is unrolled into MIL ops: step ``k`` picks the
row of largest magnitude in the trailing column (the first on ties, as LAPACK's ``idamax``), swaps it to the top of
the trailing block (a ``gather`` of a permutation, so ``inf`` / NaN in other rows never leak), divides the column
below by the pivot (a zero pivot, a singular matrix, gives factors of 0 as LAPACK skips the scaling) and subtracts
the rank-1 update. About 15 ops a step on the whole batch; ``n`` steps. Cholesky and triangular solves are
unrolled the same way (one column or row a step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import arg, const_value, frontend, select
from devicefit.convert.rescue._registry import rescue

# Largest matrix size unrolled: the program grows by ~15 ops per row (fp32 accuracy degrades with n as PyTorch's)
MAX_SIZE = 32


@dataclass
class Elimination:
    """The unrolled factorization of ``[A | B]``: ``rows[k]`` is step ``k``'s pivot row from column ``k`` on
    (``U[k, k:]`` then the transformed right-hand side), ``sign`` the permutation's sign (``(...,)`` float)."""

    rows: list[Any]
    sign: Any


def _square_size(a: Any, op: str) -> int:
    from coremltools.converters.mil.mil.types.symbolic import any_symbolic

    if a.rank < 2 or any_symbolic(a.shape[-2:]) or int(a.shape[-1]) != int(a.shape[-2]):
        raise NotImplementedError(f"{op} needs square matrices of a static size (got shape {tuple(a.shape)})")
    n = int(a.shape[-1])
    if n > MAX_SIZE:
        raise NotImplementedError(
            f"{op} of a {n}x{n} matrix: devicefit unrolls the LU factorization up to {MAX_SIZE}x{MAX_SIZE} "
            f"(Core ML has no LU); compute it outside the model or split the matrix into blocks"
        )
    return n


def _take(x: Any, axis: int, begin: int, end: int, squeeze: bool = False) -> Any:
    """``x[..., begin:end, ...]`` on ``axis`` (negative), squeezed when asked (then ``end = begin + 1``)."""
    from coremltools.converters.mil.mil import Builder as mb

    rank = x.rank
    axis %= rank
    begins, ends = [0] * rank, [0] * rank
    begins[axis], ends[axis] = begin, end
    mask = [True] * rank
    mask[axis] = False
    squeeze_mask = [False] * rank
    squeeze_mask[axis] = squeeze
    return mb.slice_by_index(
        x=x, begin=begins, end=ends, begin_mask=mask, end_mask=mask, squeeze_mask=squeeze_mask
    )


def eliminate(a: Any, n: int, rhs: Any = None) -> Elimination:
    """Gaussian elimination with partial pivoting of the ``(..., n, n)`` matrix ``a`` (and ``rhs``, ``(..., n, k)``,
    transformed alongside), unrolled."""
    from coremltools.converters.mil.mil import Builder as mb

    block = a if rhs is None else mb.concat(values=[a, rhs], axis=-1)
    dtype = np.float32
    batch = block.rank - 2
    sign: Any = None
    rows = []
    for k in range(n):
        size = n - k
        if size > 1:
            column = mb.abs(x=_take(block, -1, 0, 1, squeeze=True))  # (..., size)
            pivot = mb.reduce_argmax(x=column, axis=-1, keep_dims=False)  # (...,), the first largest
            order = np.arange(size, dtype=np.int32)
            # the permutation that swaps row 0 and the pivot row: i -> p at 0, 0 at p, i elsewhere
            at_pivot = mb.equal(x=order, y=mb.expand_dims(x=pivot, axes=[-1]))
            perm = select(at_pivot, np.int32(0), order)
            perm = select(order == 0, mb.expand_dims(x=pivot, axes=[-1]), perm)
            # NOTE: gather_along_axis, not gather with batch_dims (iOS16+): the rows picked per matrix, every column
            picks = mb.tile(
                x=mb.expand_dims(x=perm, axes=[-1]), reps=[1] * (batch + 1) + [int(block.shape[-1])]
            )
            block = mb.gather_along_axis(x=block, indices=picks, axis=-2)
            flip = select(mb.not_equal(x=pivot, y=np.int32(0)), dtype(-1), dtype(1))
            sign = flip if sign is None else mb.mul(x=sign, y=flip)
        top = _take(block, -2, 0, 1, squeeze=True)  # (..., width)
        rows.append(top)
        if size == 1:
            break
        head = _take(top, -1, 0, 1)  # (..., 1), the pivot
        below = _take(block, -2, 1, size)  # (..., size - 1, width)
        factor = mb.real_div(x=_take(below, -1, 0, 1), y=mb.expand_dims(x=head, axes=[-1]))
        factor = select(mb.equal(x=mb.expand_dims(x=head, axes=[-1]), y=dtype(0)), dtype(0), factor)
        update = mb.mul(x=factor, y=mb.expand_dims(x=_take(top, -1, 1, top.shape[-1]), axes=[-2]))
        block = mb.sub(x=_take(below, -1, 1, below.shape[-1]), y=update)
    if sign is None:  # a 1x1 matrix: no swap
        from coremltools.converters.mil.mil.types.symbolic import any_symbolic

        lead = tuple(block.shape[:-2])
        sign = (
            mb.fill(shape=_take(mb.shape(x=rows[0]), 0, 0, -1), value=1.0)
            if any_symbolic(lead)
            else np.ones(lead, dtype)
        )
    return Elimination(rows=rows, sign=sign)


def _pivots(elim: Elimination) -> Any:
    """The diagonal of ``U``, ``(..., n)``."""
    from coremltools.converters.mil.mil import Builder as mb

    heads = [_take(row, -1, 0, 1) for row in elim.rows]
    return heads[0] if len(heads) == 1 else mb.concat(values=heads, axis=-1)


def _matrix(context: Any, node: Any, op: str) -> tuple[Any, int]:
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    a = frontend()._get_inputs(context, node, min_expected=1)[0]
    if a.dtype != types.fp32:  # integers, and fp16 inputs factored in fp32
        a = mb.cast(x=a, dtype="fp32")
    return a, _square_size(a, op)


def _log_abs(x: Any) -> Any:
    from coremltools.converters.mil.mil import Builder as mb

    # NOTE: MIL log's default epsilon would make log(0) = -103 instead of -inf
    return mb.log(x=mb.abs(x=x), epsilon=0.0)


@rescue("linalg_det", "coremltools 9.0 has no translation (torch.linalg.det)", aliases=("det", "_linalg_det"))
def linalg_det(context: Any, node: Any) -> None:
    """``det(A)``: the permutation's sign times the product of ``U``'s diagonal, as PyTorch computes it."""
    from coremltools.converters.mil.mil import Builder as mb

    a, n = _matrix(context, node, "det")
    elim = eliminate(a, n)
    det = mb.mul(x=elim.sign, y=mb.reduce_prod(x=_pivots(elim), axes=[-1], keep_dims=False))
    if node.kind == "_linalg_det":  # torch.export's (det, LU, pivots): only det is given
        context.add((det, None, None), torch_name=node.name)
        return
    context.add(mb.identity(x=det, name=node.name), torch_name=node.name)


def _slogdet(context: Any, node: Any, op: str) -> tuple[Any, Any]:
    """``(sign, log|det|)``: ``log|det|`` as a sum of ``log|u_kk|`` (no overflow of the product); a singular
    matrix gives ``(0, -inf)`` as PyTorch."""
    from coremltools.converters.mil.mil import Builder as mb

    a, n = _matrix(context, node, op)
    elim = eliminate(a, n)
    pivots = _pivots(elim)
    signs = mb.reduce_prod(x=mb.sign(x=pivots), axes=[-1], keep_dims=False)
    return mb.mul(x=elim.sign, y=signs), mb.reduce_sum(x=_log_abs(pivots), axes=[-1], keep_dims=False)


@rescue(
    "linalg_slogdet",
    "coremltools 9.0 has no translation (torch.linalg.slogdet: flows' log-determinants)",
    aliases=("slogdet", "_linalg_slogdet"),
)
def linalg_slogdet(context: Any, node: Any) -> None:
    sign, logabsdet = _slogdet(context, node, "slogdet")
    if len(node.outputs) >= 2:  # TorchScript: one name per output
        context.add(sign, torch_name=node.outputs[0])
        context.add(logabsdet, torch_name=node.outputs[1])
    else:
        extra = (None, None) if node.kind == "_linalg_slogdet" else ()
        context.add((sign, logabsdet, *extra), torch_name=node.name)


@rescue("logdet", "coremltools 9.0 has no translation (torch.logdet)")
def logdet(context: Any, node: Any) -> None:
    """``log(det(A))``: PyTorch's ``log|det|`` where the sign is positive, NaN where negative, ``-inf`` at 0."""
    from coremltools.converters.mil.mil import Builder as mb

    sign, logabsdet = _slogdet(context, node, "logdet")
    out = select(mb.less(x=sign, y=0.0), np.float32(np.nan), logabsdet)
    context.add(mb.identity(x=out, name=node.name), torch_name=node.name)


def solve(a: Any, b: Any, n: int) -> Any:
    """``A^-1 B`` for ``B`` of shape ``(..., n, k)``: the elimination, then back substitution."""
    from coremltools.converters.mil.mil import Builder as mb

    elim = eliminate(a, n, rhs=b)
    solved: list[Any] = []  # rows n-1, n-2, ... of the solution, each (..., 1, k)
    for k in reversed(range(n)):
        row = elim.rows[k]  # (..., n - k + width_b): u_kk, U[k, k+1:], c_k
        head = _take(row, -1, 0, 1)  # (..., 1)
        rest = _take(row, -1, n - k, row.shape[-1])  # (..., k_b)
        if solved:
            known = mb.concat(values=solved[::-1], axis=-2) if len(solved) > 1 else solved[0]
            coeffs = mb.expand_dims(x=_take(row, -1, 1, n - k), axes=[-1])  # (..., n-k-1, 1)
            rest = mb.sub(x=rest, y=mb.reduce_sum(x=mb.mul(x=coeffs, y=known), axes=[-2], keep_dims=False))
        solved.append(mb.expand_dims(x=mb.real_div(x=rest, y=head), axes=[-2]))
    return mb.concat(values=solved[::-1], axis=-2) if len(solved) > 1 else solved[0]


def identity_like(a: Any, n: int) -> Any:
    """The ``n x n`` identity broadcast to ``a``'s batch (exact: ``a * 0`` would turn inf into NaN)."""
    from coremltools.converters.mil.mil import Builder as mb

    from devicefit.convert.rescue._mil import broadcast_to

    eye = mb.const(val=np.eye(n, dtype=np.float32))
    return broadcast_to(eye, [int(d) for d in a.shape]) if a.rank > 2 else eye


def inverse(a: Any, n: int) -> Any:
    """``A^-1``: :func:`solve` with the identity as right-hand side (PyTorch's ``linalg_inv`` is ``solve(A, I)``)."""
    return solve(a, identity_like(a, n), n)


@rescue(
    "linalg_inv",
    "override: coremltools 9.0 inverts only constant matrices (torch.linalg.inv of a run-time matrix)",
    override=True,
    aliases=("inverse", "linalg_inv_ex"),
)
def linalg_inv(context: Any, node: Any) -> None:
    from coremltools.converters.mil.mil import Builder as mb

    constant = frontend()._get_inputs(context, node, min_expected=1)[0].val
    if constant is not None:  # a constant (any size): PyTorch's own inverse, folded
        import torch

        out = mb.const(val=torch.linalg.inv(torch.from_numpy(np.asarray(constant, dtype=np.float32))).numpy())
    else:
        out = inverse(*_matrix(context, node, "inv"))
    if node.kind == "linalg_inv_ex":  # (inverse, info)
        context.add((out, None), torch_name=node.name)
        return
    context.add(mb.identity(x=out, name=node.name), torch_name=node.name)


@rescue(
    "linalg_solve", "coremltools 9.0 has no translation (torch.linalg.solve)", aliases=("_linalg_solve_ex",)
)
def linalg_solve(context: Any, node: Any) -> None:
    """``torch.linalg.solve(A, B, left=True)``: a vector ``B`` (PyTorch's rule: ``B.ndim == 1``, or ``A.ndim - 1``
    with ``B.shape == A.shape[:-1]``) as one column; batch axes broadcast."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    a, b = frontend().promote_input_dtypes([inputs[0], inputs[1]])
    if not bool(const_value(arg(context, node, inputs, 2, "left"), True)):
        raise NotImplementedError("linalg.solve with left=False: solve the transposed system instead")
    n = _square_size(a, "solve")
    vector = b.rank == 1 or (b.rank == a.rank - 1 and tuple(b.shape) == tuple(a.shape[:-1]))
    rhs = mb.expand_dims(x=b, axes=[-1]) if vector else b
    if a.rank > 2 or rhs.rank > 2:
        shape = np.broadcast_shapes(tuple(a.shape[:-2]), tuple(rhs.shape[:-2]))
        from devicefit.convert.rescue._mil import broadcast_to

        a = broadcast_to(a, [*shape, n, n])
        rhs = broadcast_to(rhs, [*shape, n, int(rhs.shape[-1])])
    out = solve(a, rhs, n)
    if vector:
        out = mb.squeeze(x=out, axes=[-1])
    if node.kind == "_linalg_solve_ex":  # (result, LU, pivots, info)
        context.add((out, None, None, None), torch_name=node.name)
        return
    context.add(mb.identity(x=out, name=node.name), torch_name=node.name)


def _broadcast_batch(a: Any, b: Any, n: int) -> tuple[Any, Any]:
    """``a`` (``(..., n, n)``) and ``b`` (``(..., n, k)``) with their batch axes broadcast (static shapes)."""
    from devicefit.convert.rescue._mil import broadcast_to

    if a.rank == 2 and b.rank == 2:
        return a, b
    shape = np.broadcast_shapes(tuple(a.shape[:-2]), tuple(b.shape[:-2]))
    return broadcast_to(a, [*shape, n, n]), broadcast_to(b, [*shape, n, int(b.shape[-1])])


def cholesky(a: Any, n: int) -> Any:
    """The lower Cholesky factor of ``a`` column by column (LAPACK ``potf2``'s order): ``v = A[:, j] - sum_k<j
    L[:, k] L[j, k]``, ``L[:, j] = v / sqrt(v_j)`` below the diagonal, 0 above. A matrix that is not positive
    definite gives NaN where PyTorch raises."""
    from coremltools.converters.mil.mil import Builder as mb

    columns: list[Any] = []  # L[:, j], each (..., n, 1)
    order = np.arange(n)
    for j in range(n):
        v = _take(a, -1, j, j + 1)  # (..., n, 1)
        for column in columns:
            v = mb.sub(x=v, y=mb.mul(x=column, y=_take(column, -2, j, j + 1)))
        root = mb.sqrt(x=_take(v, -2, j, j + 1))
        columns.append(select((order >= j)[:, None], mb.real_div(x=v, y=root), np.float32(0)))
    return mb.concat(values=columns, axis=-1) if n > 1 else columns[0]


@rescue(
    "linalg_cholesky",
    "coremltools 9.0 has no translation (torch.linalg.cholesky: Gaussian processes, Kalman filters)",
    aliases=("cholesky", "linalg_cholesky_ex"),
)
def linalg_cholesky(context: Any, node: Any) -> None:
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=1)
    a, n = _matrix(context, node, "cholesky")
    upper = bool(const_value(arg(context, node, inputs, 1, "upper"), False))
    out = cholesky(a, n)
    if upper:
        out = mb.transpose(x=out, perm=[*range(out.rank - 2), out.rank - 1, out.rank - 2])
    if node.kind == "linalg_cholesky_ex":  # (L, info)
        context.add((out, None), torch_name=node.name)
        return
    context.add(mb.identity(x=out, name=node.name), torch_name=node.name)


def solve_triangular(a: Any, b: Any, n: int, upper: bool, unit: bool) -> Any:
    """``A^-1 B`` for a triangular ``A``: substitution row by row from the end (upper) or the start (lower);
    entries outside the triangle are never read, the diagonal neither with ``unit``."""
    from coremltools.converters.mil.mil import Builder as mb

    solved: dict[int, Any] = {}  # row -> (..., 1, k)
    for i in reversed(range(n)) if upper else range(n):
        rest = _take(b, -2, i, i + 1)
        known = sorted(solved)
        if known:
            lo, hi = known[0], known[-1] + 1  # the solved rows are contiguous: (i, n) or [0, i)
            coeffs = mb.expand_dims(x=_take(_take(a, -2, i, i + 1, squeeze=True), -1, lo, hi), axes=[-1])
            x = mb.concat(values=[solved[r] for r in known], axis=-2) if len(known) > 1 else solved[lo]
            rest = mb.sub(x=rest, y=mb.reduce_sum(x=mb.mul(x=coeffs, y=x), axes=[-2], keep_dims=True))
        solved[i] = rest if unit else mb.real_div(x=rest, y=_take(_take(a, -2, i, i + 1), -1, i, i + 1))
    return mb.concat(values=[solved[r] for r in range(n)], axis=-2) if n > 1 else solved[0]


@rescue(
    "linalg_solve_triangular",
    "coremltools 9.0 has no translation (torch.linalg.solve_triangular)",
)
def linalg_solve_triangular(context: Any, node: Any) -> None:
    """``torch.linalg.solve_triangular(A, B, upper, left=True, unitriangular=False)``; ``left=False`` (``X A = B``)
    as the transposed system. Up to 32x32, static shapes."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, min_expected=2)
    a, b = frontend().promote_input_dtypes([inputs[0], inputs[1]])
    upper = const_value(arg(context, node, inputs, 2, "upper"), None)
    if upper is None:
        raise ValueError("solve_triangular needs upper=True or False")
    upper = bool(upper)
    left = bool(const_value(arg(context, node, inputs, 3, "left"), True))
    unit = bool(const_value(arg(context, node, inputs, 4, "unitriangular"), False))
    n = _square_size(a, "solve_triangular")

    def swap(v: Any) -> Any:
        return mb.transpose(x=v, perm=[*range(v.rank - 2), v.rank - 1, v.rank - 2])

    if not left:  # X A = B  <=>  A^T X^T = B^T, with the triangle flipped
        a, b, upper = swap(a), swap(b), not upper
    a, b = _broadcast_batch(a, b, n)
    out = solve_triangular(a, b, n, upper, unit)
    context.add(mb.identity(x=swap(out) if not left else out, name=node.name), torch_name=node.name)
