"""``torch.histc`` (coremltools 9.0 has none) against PyTorch through the interpreter: bit-exact, values on and
next to every bin edge included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devicefit.convert.rescue.histogram import bin_thresholds
from tests.convert.elementwise_helpers import check_rescued

FRONTENDS = ["torchscript", "torch.export"]


def _edge_values(low: float, high: float, bins: int) -> torch.Tensor:
    edges = np.linspace(low, high, bins + 1).astype(np.float32)
    near = np.concatenate(
        [edges, np.nextafter(edges, np.float32(-np.inf)), np.nextafter(edges, np.float32(np.inf))]
    )
    return torch.from_numpy(near.astype(np.float32))


@pytest.mark.parametrize(
    ("low", "high", "bins"), [(-1.0, 1.0, 5), (0.1, 0.7, 7), (-3.0, 1e3, 100), (0.0, 1.0, 1)]
)
def test_thresholds_reproduce_pytorchs_binning(low, high, bins):
    torch.manual_seed(0)
    values = torch.cat([_edge_values(low, high, bins), torch.rand(5000) * (high - low) + low])
    values = values[(values >= low) & (values <= high)]
    thresholds = torch.from_numpy(bin_thresholds(low, high, bins))
    ours = (values[:, None] >= thresholds[None, :]).sum(1)
    expected = torch.histc(values, bins, low, high)
    got = torch.bincount(ours, minlength=bins).float()
    assert torch.equal(got, expected)


@pytest.mark.parametrize("frontend", FRONTENDS)
# (-3, 1000, 100): the formula with the division as a product by the reciprocal (coremltools' rewrite) puts
# values next to some edges into the wrong bin; the thresholds do not
@pytest.mark.parametrize(("low", "high", "bins"), [(-1.0, 1.0, 5), (0.1, 0.7, 7), (-3.0, 1e3, 100)])
def test_histc(frontend, low, high, bins):
    torch.manual_seed(0)
    x = torch.cat(
        [_edge_values(low, high, bins), torch.randn(300), torch.tensor([float("nan"), float("inf")])]
    )
    check_rescued(lambda t: torch.histc(t, bins, low, high), (x,), frontend, "histc")


def test_histc_of_a_matrix_with_default_bins():
    torch.manual_seed(0)
    x = torch.rand(8, 16)
    check_rescued(lambda t: torch.histc(t, min=0.0, max=1.0), (x,), "torchscript", "histc")


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("bins", [1, 4, 37])
def test_histc_with_the_range_from_the_data(frontend, bins):
    torch.manual_seed(0)
    # the data's own extremes are edges; values at and next to the inner edges of [-2.5, 4] are included
    x = torch.cat([_edge_values(-2.5, 4.0, bins)[1:], torch.rand(200) * 6.5 - 2.5, torch.tensor([-2.5, 4.0])])
    x = x[(x >= -2.5) & (x <= 4.0)]
    check_rescued(lambda t: torch.histc(t, bins), (x,), frontend, "histc")


def test_histc_of_one_repeated_value_widens_the_range():
    check_rescued(lambda t: torch.histc(t, 3), (torch.full((5,), 0.75),), "torchscript", "histc")
