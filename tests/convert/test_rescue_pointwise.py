"""``logaddexp``, ``logaddexp2``, ``fmin``, ``fmax``, ``hardshrink``, ``softshrink``, ``float_power``,
``round(decimals=)`` and ``where(cond, scalar, x)`` on torch.export against PyTorch through the interpreter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.convert.elementwise_helpers import check_rescued, run_fn

FRONTENDS = ["torchscript", "torch.export"]
INF, NAN = float("inf"), float("nan")


def _log_operands() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    a = torch.cat(
        [torch.randn(200) * 30, torch.tensor([INF, -INF, INF, -INF, NAN, 2.0, 0.0, 1e-30, 88.0, -1e4])]
    )
    b = torch.cat(
        [torch.randn(200) * 30, torch.tensor([INF, -INF, -INF, 3.0, 1.0, NAN, -0.0, 1e-30, 88.5, -1e4])]
    )
    a[:50] = b[:50] + torch.randn(50) * 1e-3  # nearly equal operands: the log1p term is ~ln 2
    return a, b


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("op", ["logaddexp", "logaddexp2"])
def test_logaddexp(frontend, op):
    a, b = _log_operands()
    # measured: 1.2e-7 relative at most (max + our log1p of exp; PyTorch uses libm's log1p)
    check_rescued(getattr(torch, op), (a, b), frontend, op, rtol=5e-7, atol=1e-7)


def test_logaddexp_broadcasts_and_fp16():
    torch.manual_seed(0)
    a, b = torch.randn(3, 1) * 4, torch.randn(1, 5) * 4
    check_rescued(torch.logaddexp, (a, b), "torch.export", "logaddexp", rtol=5e-7)
    # fp16: inputs and result rounded to fp16 (eps 9.8e-4)
    check_rescued(torch.logaddexp, (a, b), "torchscript", "logaddexp", rtol=3e-3, atol=3e-3, precision="fp16")


def test_logaddexp_of_equal_infinities_in_fp16():
    a = torch.tensor([INF, -INF, 1.0, -INF])
    b = torch.tensor([INF, -INF, -INF, 2.0])
    check_rescued(torch.logaddexp, (a, b), "torch.export", "logaddexp", rtol=3e-3, precision="fp16")


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("op", ["fmin", "fmax"])
def test_fmin_fmax_ignore_nan(frontend, op):
    a = torch.tensor([NAN, 1.0, NAN, -INF, 2.0, -0.0, 0.0, 5.0])
    b = torch.tensor([3.0, NAN, NAN, 4.0, -7.0, 0.0, -0.0, 5.0])
    check_rescued(getattr(torch, op), (a, b), frontend, op)


@pytest.mark.parametrize("op", ["fmin", "fmax"])
def test_fmin_fmax_keep_ints_and_broadcast(op):
    a = torch.tensor([[3], [-1]], dtype=torch.int32)
    b = torch.tensor([[0, 5, -4]], dtype=torch.int32)
    check_rescued(getattr(torch, op), (a, b), "torchscript", op)


SHRINK_INPUT = torch.tensor([NAN, 0.3, -0.7, -0.0, 0.0, 0.5, -0.5, 0.2, 4.0, -INF, INF, -0.51])


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("lambd", [0.5, 0.25])
def test_hardshrink(frontend, lambd):
    # torch.export decomposes hardshrink into where(|x| <= lambd, 0, x): devicefit's where.ScalarSelf
    op = "hardshrink" if frontend == "torchscript" else "where.scalarself"
    check_rescued(lambda t: F.hardshrink(t, lambd), (SHRINK_INPUT,), frontend, op)


@pytest.mark.parametrize("lambd", [0.5, 0.25])
def test_softshrink(lambd):
    # 64 values: PyTorch's vectorized loop, which gives +0 inside the band (its scalar loop, for a short tail,
    # gives -0 for negatives)
    x = torch.cat([SHRINK_INPUT, torch.linspace(-1, 1, 52)])
    check_rescued(lambda t: F.softshrink(t, lambd), (x,), "torchscript", "softshrink")


def test_shrinks_fp16():
    x = torch.linspace(-2, 2, 64)
    check_rescued(F.hardshrink, (x,), "torchscript", "hardshrink", precision="fp16", rtol=1e-3)
    check_rescued(F.softshrink, (x,), "torchscript", "softshrink", precision="fp16", rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_where_with_an_int_scalar_and_a_float_tensor(frontend):
    x = torch.randn(3, 4)
    if frontend == "torchscript":
        pytest.skip("TorchScript converts torch.where(mask, 0, x) without devicefit")
    check_rescued(lambda t: torch.where(t > 0, 0, t), (x,), frontend, "where.scalarself")


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_float_power(frontend):
    torch.manual_seed(0)
    x = torch.rand(20) * 10
    e = torch.randn(20)
    # PyTorch computes in float64; Core ML has no float64: fp32 pow, compared with float64's result
    check_rescued(lambda t, p: torch.float_power(t, p), (x, e), frontend, "float_power", rtol=3e-7)
    check_rescued(lambda t: torch.float_power(t, 2.5), (x,), frontend, "float_power", rtol=3e-7)
    ints = torch.tensor([-3, 2, 0, 7], dtype=torch.int32)
    check_rescued(lambda t: torch.float_power(t, 3), (ints,), frontend, "float_power")


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("decimals", [2, 1, -1, -2, 3])
def test_round_decimals(frontend, decimals):
    torch.manual_seed(0)
    x = torch.cat(
        [torch.randn(500) * 100, torch.tensor([0.125, 2.5, -2.5, 1.005, 250.0, 1050.0, -0.0, NAN, INF])]
    )
    # NOTE: within one fp32 ulp, not bit-exact: coremltools rewrites every division by a constant as a product
    # with its reciprocal (its divide_to_multiply pass), so round(x * 100) / 100 becomes round(x * 100) * 0.01
    check_rescued(lambda t: torch.round(t, decimals=decimals), (x,), frontend, "round", rtol=1.2e-7)


def test_round_without_decimals_stays_with_coremltools():
    got, expected, rescued = run_fn(lambda t: torch.round(t * 3), (torch.randn(10),), "torch.export")
    assert "round" not in rescued
    np.testing.assert_array_equal(got[0], expected[0])


def test_round_with_zero_decimals_on_torchscript():
    # TorchScript passes decimals=0 as a second input, which coremltools' own translation refused
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.7, 3.2])
    check_rescued(lambda t: torch.round(t, decimals=0), (x,), "torchscript", "round")
