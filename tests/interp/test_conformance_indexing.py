"""Index handling of gathers and scatters per opset, through MIL programs, against numpy.

iOS15/16: an index ``v`` with ``-D <= v < 0`` counts from the end. iOS17 made negative indices
out-of-bound (coremltools' own passes rewrite them to positive ones before iOS17 ops). Out-of-bound indices
are undefined on a device (``validate_indices=False``) or a runtime error (``True``); the interpreter
refuses them with a one-line InputError either way rather than inventing a value.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devicefit.errors import InputError
from devicefit.interp.registry import get_kernel
from tests.interp import milprog

DATA = np.arange(24, dtype=np.float32).reshape(4, 6)
UPD_ROWS = np.float32([[100] * 6, [200] * 6])


def _ops(mb, name, x, i, **kw):
    """Each indexing op reading rows of a [4, 6] ``x`` at the run-time row indices ``i`` (shape [2])."""
    if name == "gather":
        return mb.gather(x=x, indices=i, axis=0, **kw)
    if name == "gather_along_axis":
        return mb.gather_along_axis(
            x=x, indices=mb.tile(x=mb.expand_dims(x=i, axes=[1]), reps=[1, 6]), axis=0, **kw
        )
    if name == "gather_nd":
        return mb.gather_nd(x=x, indices=mb.expand_dims(x=i, axes=[1]), **kw)
    if name == "scatter":
        return mb.scatter(data=x, indices=i, updates=UPD_ROWS, axis=0, mode="update", **kw)
    if name == "scatter_along_axis":
        idx = mb.tile(x=mb.expand_dims(x=i, axes=[1]), reps=[1, 6])
        return mb.scatter_along_axis(data=x, indices=idx, updates=UPD_ROWS, axis=0, mode="update", **kw)
    return mb.scatter_nd(data=x, indices=mb.expand_dims(x=i, axes=[1]), updates=UPD_ROWS, mode="update", **kw)


OPS = ["gather", "gather_along_axis", "gather_nd", "scatter", "scatter_along_axis", "scatter_nd"]


def _expected(name: str, rows: np.ndarray) -> np.ndarray:
    if name.startswith("gather"):
        return DATA[rows]
    out = DATA.copy()
    out[rows] = UPD_ROWS
    return out


def _run(name, rows, target, **kw):
    from coremltools.converters.mil import Builder as mb

    def prog(x, i):
        return _ops(mb, name, x, i, **kw)

    return milprog.run(prog, {"x": DATA, "i": np.int32(rows)}, target=target, op=name)


@pytest.mark.parametrize("name", OPS)
def test_negative_indices_count_from_the_end_before_ios17(name):
    np.testing.assert_array_equal(_run(name, [-1, 1], "iOS16"), _expected(name, np.array([3, 1])))


@pytest.mark.parametrize("name", OPS)
def test_in_range_indices_ios17(name):
    np.testing.assert_array_equal(_run(name, [2, 0], "iOS17"), _expected(name, np.array([2, 0])))


REWRITTEN = {"gather", "gather_nd"}  # coremltools wraps their indices with a select before the iOS17 op


@pytest.mark.parametrize("validate", [False, True])
@pytest.mark.parametrize("name", sorted(set(OPS) - REWRITTEN))
def test_negative_indices_are_out_of_bound_from_ios17(name, validate):
    with pytest.raises(InputError, match=r"out of range.*iOS17") as e:
        _run(name, [-1, 1], "iOS17", validate_indices=validate)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", sorted(REWRITTEN))
def test_ios17_gathers_get_negative_indices_rewritten_by_the_converter(name):
    np.testing.assert_array_equal(_run(name, [-1, 1], "iOS17"), _expected(name, np.array([3, 1])))
    kernel = get_kernel(name, 17).fn  # the op itself, fed a negative index, refuses it
    indices = torch.tensor([-1, 1]) if name == "gather" else torch.tensor([[-1], [1]])
    with pytest.raises(InputError, match="iOS17"):
        kernel(torch.from_numpy(DATA), indices)


@pytest.mark.parametrize("target", ["iOS16", "iOS17"])
@pytest.mark.parametrize("name", OPS)
def test_indices_past_the_end_are_refused(name, target):
    kw = {"validate_indices": True} if target == "iOS17" else {}
    with pytest.raises(InputError, match="out of range") as e:
        _run(name, [4, 0], target, **kw)
    assert "\n" not in str(e.value)


SCATTER_UFUNC = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "max": np.maximum,
    "min": np.minimum,
}


@pytest.mark.parametrize("dtype", [np.float32, np.int32])
@pytest.mark.parametrize("mode", [*SCATTER_UFUNC, "update"])
def test_scatter_modes_with_repeated_indices(mode, dtype):
    """Repeated indices combine (add, sub, mul, div, max, min apply once per update); ``update`` uses distinct ones."""
    from coremltools.converters.mil import Builder as mb

    data = (DATA + 1).astype(dtype)  # no zeros to divide by
    rows = np.int32([2, 0] if mode == "update" else [2, 2])
    updates = np.array([[2, 3, 4, 5, 6, 7], [3, 2, 5, 4, 2, 3]], dtype)
    if mode == "div" and dtype == np.int32:
        pytest.skip("integer division rounding of repeated updates is not specified")

    def prog(x, i, u):
        return mb.scatter(data=x, indices=i, updates=u, axis=0, mode=mode)

    out = milprog.run(prog, {"x": data, "i": rows, "u": updates}, target="iOS16", op="scatter")
    expected = data.copy()
    if mode == "update":
        expected[rows] = updates
    else:
        SCATTER_UFUNC[mode].at(expected, rows, updates)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
