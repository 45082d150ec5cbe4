"""PyTorch's alias names of ops (``torch.multiply``...): coremltools 9.0 had no translation for them."""

from __future__ import annotations

import pytest
import torch

from tests.convert.helpers import convert_and_compare


class Aliases(torch.nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        gate = (
            torch.greater(x, 0.1).float() + torch.less_equal(y, -0.2).float() + torch.not_equal(x, y).float()
        )
        mixed = torch.multiply(x, y) + torch.divide(x, y.abs() + 1.0, rounding_mode="floor")
        mixed = torch.subtract(mixed, torch.absolute(torch.negative(y))) * torch.special.expit(x)
        angles = torch.arctan(x) + torch.arcsin(x.clamp(-0.9, 0.9))
        stacked = torch.concatenate([torch.swapaxes(mixed, 1, 2), torch.swapdims(angles, 2, 1)], dim=1)
        return stacked * gate.sum(), torch.greater_equal(x, y).float() - torch.less(x, y).float()


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_alias_ops_convert_and_match_pytorch(frontend):
    torch.manual_seed(0)
    result, _ = convert_and_compare(Aliases(), (torch.randn(2, 3, 4), torch.randn(2, 3, 4)), frontend)
    if frontend == "torchscript":  # torch.export already decomposes aliases into the ops they name
        assert {"multiply", "divide", "greater", "swapaxes", "concatenate"} <= set(result.scan.rescued)


SPECIAL = {
    "special_logsumexp": lambda t: torch.special.logsumexp(t, 1),
    "special_softmax": lambda t: torch.special.softmax(t, 1),
    "special_log_softmax": lambda t: torch.special.log_softmax(t, -1),
    "special_expm1": torch.special.expm1,
    "special_exp2": torch.special.exp2,
    "special_log1p": lambda t: torch.special.log1p(t.abs()),
    "special_round": lambda t: torch.special.round(t * 10),
    "special_sinc": torch.special.sinc,
    "special_multigammaln": lambda t: torch.special.multigammaln(t.abs() + 3, 2),
}


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
@pytest.mark.parametrize("op", sorted(SPECIAL))
def test_torch_special_names(op, frontend):
    # refused by coremltools 9.0 on both frontends (one-op probe); each is the op it names
    from tests.convert.elementwise_helpers import check_rescued

    torch.manual_seed(0)
    check_rescued(SPECIAL[op], (torch.randn(3, 6),), frontend, op, rtol=1e-6, atol=1e-7)
