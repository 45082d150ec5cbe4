"""``torch.bincount`` (coremltools 9.0 has none): with a constant ``minlength`` that bounds the values, counts and
weighted sums match PyTorch; without ``minlength`` (a data-dependent length) it is refused with a hint."""

from __future__ import annotations

import pytest
import torch

from devicefit.convert import ConversionError
from tests.convert.elementwise_helpers import check_rescued, run_fn

FRONTENDS = ["torchscript", "torch.export"]


def _labels() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randint(0, 9, (50,), dtype=torch.int32)  # bin 9 stays empty: the tail of the output


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_bincount_with_minlength(frontend):
    check_rescued(lambda t: torch.bincount(t, minlength=10), (_labels(),), frontend, "bincount")


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_weighted_bincount(frontend):
    weights = torch.rand(50)
    fn = lambda t, w: torch.bincount(t, w, minlength=10)  # noqa: E731
    check_rescued(fn, (_labels(), weights), frontend, "bincount", rtol=1e-6)
    check_rescued(fn, (_labels(), weights), frontend, "bincount", rtol=2e-3, atol=1e-2, precision="fp16")


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_bincount_without_minlength_is_refused_with_a_hint(frontend):
    with pytest.raises(ConversionError, match=r"data-dependent length.*minlength=N"):
        run_fn(lambda t: torch.bincount(t), (_labels(),), frontend)
