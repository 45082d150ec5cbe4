"""``det``, ``slogdet``, ``logdet``, ``solve`` and ``inv`` of run-time matrices (coremltools 9.0 has no LU): the
unrolled elimination with partial pivoting against PyTorch through the interpreter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.convert.elementwise_helpers import check_rescued, run_fn

FRONTENDS = ["torchscript", "torch.export"]


def _matrices(*shape: int, seed: int = 0) -> torch.Tensor:
    """Well-conditioned random matrices: the error of any fp32 LU is then a few ulps of the result."""
    torch.manual_seed(seed)
    n = shape[-1]
    return torch.randn(*shape) + 2.0 * torch.eye(n)


@pytest.mark.slow
@pytest.mark.parametrize("frontend", FRONTENDS)
def test_det_batched(frontend):
    a = _matrices(2, 3, 3, 3)
    check_rescued(torch.linalg.det, (a,), frontend, "linalg_det", rtol=2e-5)


@pytest.mark.slow
@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 16])
def test_det_sizes(frontend, n):
    # against float64: as close as PyTorch's own fp32 LU (measured on 64 matrices per size up to 32x32: both within
    # 1e-4 relative, medians 2e-8 (n = 2) to 1e-6 (n = 32)); tied to PyTorch's error, with a floor of 2e-5
    a = _matrices(8, n, n, seed=n)
    got, expected, rescued = run_fn(torch.det, (a,), frontend)
    assert "linalg_det" in rescued
    exact = torch.linalg.det(a.double()).numpy()
    ours, torch_error = (np.abs(v - exact) / np.abs(exact) for v in (got[0], expected[0]))
    assert ours.max() <= max(4 * torch_error.max(), 2e-5), (ours.max(), torch_error.max())


def test_det_pivots_and_singular_matrices():
    # a zero leading entry needs a row swap; the second matrix is exactly singular (a zero column): det 0, no NaN
    a = torch.tensor(
        [
            [[0.0, 2.0, 1.0], [3.0, 1.0, 0.0], [1.0, 1.0, 4.0]],
            [[1.0, 0.0, 2.0], [3.0, 0.0, 1.0], [5.0, 0.0, 7.0]],
        ]
    )
    got, expected, rescued = run_fn(torch.linalg.det, (a,), "torchscript")
    assert "linalg_det" in rescued
    np.testing.assert_allclose(got[0][0], expected[0][0], rtol=1e-6)
    # the sign of a zero determinant is rounding noise (PyTorch +0 here, the unrolled product -0)
    assert got[0][1] == 0.0 and expected[0][1] == 0.0


@pytest.mark.slow
def test_det_fp16():
    check_rescued(
        torch.linalg.det, (_matrices(4, 3, 3),), "torchscript", "linalg_det", rtol=2e-2, precision="fp16"
    )


def test_det_refuses_large_matrices():
    from devicefit.convert import ConversionError

    with pytest.raises(ConversionError, match=r"up to 32x32"):
        run_fn(torch.linalg.det, (_matrices(33, 33),), "torchscript")


@pytest.mark.parametrize("frontend", ["torchscript", pytest.param("torch.export", marks=pytest.mark.slow)])
def test_slogdet_and_logdet(frontend):
    a = _matrices(3, 3, 3)
    a[1] = -a[1]  # a negative determinant: logdet NaN
    fn = lambda t: (*torch.linalg.slogdet(t), torch.logdet(t))  # noqa: E731
    check_rescued(fn, (a,), frontend, ("linalg_slogdet", "logdet"), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("frontend", ["torchscript", pytest.param("torch.export", marks=pytest.mark.slow)])
def test_solve_inv_and_cholesky(frontend):
    a, b = _matrices(2, 3, 3), torch.randn(2, 3, 2)
    spd = lambda x: x @ x.mT + 3 * torch.eye(3)  # noqa: E731
    fn = lambda x, y: (torch.linalg.solve(x, y), torch.linalg.inv(x), torch.linalg.cholesky(spd(x)))  # noqa: E731
    ops = ("linalg_solve", "linalg_inv", "linalg_cholesky")
    check_rescued(fn, (a, b), frontend, ops, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("frontend", FRONTENDS)
def test_solve_vector_and_broadcast(frontend):
    a, v = _matrices(6, 6), torch.randn(6)
    check_rescued(torch.linalg.solve, (a, v), frontend, "linalg_solve", rtol=1e-4, atol=1e-5)
    check_rescued(
        torch.linalg.solve, (_matrices(3, 6, 6), torch.randn(6, 2)), frontend, "linalg_solve", 1e-4, atol=1e-5
    )
    check_rescued(torch.inverse, (_matrices(5, 5),), frontend, "linalg_inv", rtol=1e-4, atol=1e-5)


def _positive_definite(*shape: int) -> torch.Tensor:
    torch.manual_seed(1)
    m = torch.randn(*shape)
    return m @ m.transpose(-1, -2) + shape[-1] * torch.eye(shape[-1])


@pytest.mark.slow
@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("upper", [False, True])
def test_cholesky(frontend, upper):
    a = _positive_definite(2, 4, 4)
    fn = lambda t: torch.linalg.cholesky(t, upper=upper)  # noqa: E731
    check_rescued(fn, (a,), frontend, "linalg_cholesky", rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("frontend", ["torchscript", pytest.param("torch.export", marks=pytest.mark.slow)])
@pytest.mark.parametrize(
    ("upper", "left", "unit"),
    [
        pytest.param(True, True, False, marks=pytest.mark.slow),
        (False, False, True),
        pytest.param(False, True, False, marks=pytest.mark.slow),
    ],
)
def test_solve_triangular(frontend, upper, left, unit):
    torch.manual_seed(0)
    a = torch.randn(2, 4, 4) + 3 * torch.eye(4)  # the other triangle is never read: left as noise
    b = torch.randn(2, 4, 3) if left else torch.randn(2, 3, 4)
    fn = lambda x, y: torch.linalg.solve_triangular(x, y, upper=upper, left=left, unitriangular=unit)  # noqa: E731
    check_rescued(fn, (a, b), frontend, "linalg_solve_triangular", rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_det_converts_for_ios15():
    # the row swap is a gather_along_axis: MIL gather's batch_dims (iOS16+) refused an iOS15 target
    from devicefit import interp
    from devicefit.convert import ConvertOptions, convert
    from tests.convert.elementwise_helpers import Fn
    from tests.convert.helpers import source_of

    source = source_of(Fn(torch.linalg.det).eval(), (_matrices(2, 4, 4),))
    result = convert(source, ConvertOptions(target="iOS15", precision="fp32"))
    got = interp.load(result.mlmodel).run(source.coreml_feeds(source.example_inputs), precision="fp32")
    for name, expected in source.reference(source.example_inputs).items():
        np.testing.assert_allclose(got[name], expected, rtol=2e-5)
