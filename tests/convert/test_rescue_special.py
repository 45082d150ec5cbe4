"""``isinf`` / ``isfinite`` / ``isposinf`` / ``isneginf``, ``signbit``, ``copysign``, ``heaviside``, ``logit``,
``xlogy``, ``sinc``, ``deg2rad``, ``rad2deg`` (coremltools 9.0 has none of them) against PyTorch."""

from __future__ import annotations

import pytest
import torch

from tests.convert.elementwise_helpers import check_rescued

FRONTENDS = ["torchscript", "torch.export"]
INF, NAN = float("inf"), float("nan")
EDGES = torch.tensor([0.0, -0.0, 1e-30, -1e-20, 0.5, -2.5, 3.0, 1e30, INF, -INF, NAN])


PREDICATES = {
    "isinf": torch.isinf,
    "isfinite": torch.isfinite,
    "isposinf": torch.isposinf,
    "isneginf": torch.isneginf,
    "signbit": torch.signbit,
}


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("op", sorted(PREDICATES))
def test_predicates_on_every_kind_of_float(frontend, op):
    values = EDGES if op != "signbit" else EDGES[:-1]  # a NaN's sign bit is not readable in MIL
    # `& (x == x)` keeps a bool op after the predicate (a model output cannot be bool; it would be cast)
    check_rescued(lambda x: PREDICATES[op](x) & (x == x), (values,), frontend, op)


@pytest.mark.parametrize("op", ["isinf", "isfinite", "signbit"])
def test_predicates_on_integers(op):
    check_rescued(
        lambda x: PREDICATES[op](x), (torch.tensor([0, -3, 7], dtype=torch.int32),), "torchscript", op
    )


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_copysign_takes_the_sign_of_negative_zero(frontend):
    a = torch.tensor([1.5, -2.0, 0.0, INF, 3.0, -0.0])
    b = torch.tensor([-0.0, 0.0, -1.0, -2.0, NAN, 5.0])
    check_rescued(torch.copysign, (a, b), frontend, "copysign")


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_heaviside(frontend):
    x = torch.tensor([-1.0, 0.0, -0.0, 2.0, NAN, -INF])
    check_rescued(lambda t: torch.heaviside(t, torch.tensor([0.5])), (x,), frontend, "heaviside")
    ints = torch.tensor([-2, 0, 3], dtype=torch.int32)
    check_rescued(
        lambda t: torch.heaviside(t, torch.tensor([7], dtype=torch.int32)), (ints,), frontend, "heaviside"
    )


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("eps", [None, 0.01])
def test_logit(frontend, eps):
    p = torch.tensor([0.0, 1e-6, 0.3, 0.5, 0.9999, 1.0, -0.5, 1.5])
    check_rescued(lambda t: torch.logit(t, eps), (p,), frontend, "logit", rtol=1e-6)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_xlogy_zero_times_log_zero_is_zero(frontend):
    x = torch.tensor([0.0, 0.0, 2.0, -1.5, 0.0, 3.0])
    y = torch.tensor([0.0, NAN, 0.5, 7.0, INF, 0.0])
    check_rescued(torch.xlogy, (x, y), frontend, "xlogy", rtol=1e-6)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_sinc_and_angle_conversions(frontend):
    x = torch.tensor([0.0, -0.0, 1e-8, 0.25, -1.0, 2.5, 100.3])
    check_rescued(torch.sinc, (x,), frontend, "sinc", rtol=2e-6)
    check_rescued(torch.deg2rad, (x,), frontend, "deg2rad", rtol=1e-7)
    check_rescued(torch.rad2deg, (x,), frontend, "rad2deg", rtol=1e-7)
