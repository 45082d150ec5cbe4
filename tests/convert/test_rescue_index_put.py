"""``x[i, j] = v`` with index tensors that broadcast (HF Informer's ProbSparse attention), which coremltools 9.0
refuses, against PyTorch through the interpreter."""

from __future__ import annotations

import pytest
import torch

from tests.convert.elementwise_helpers import assert_close_elementwise, assert_same_integers, run_fn

FRONTENDS = ["torchscript", "torch.export"]


class ProbSparseWriteBack(torch.nn.Module):
    """Informer's pattern: the mean of the values everywhere, the attention output at the top-u queries."""

    def forward(self, values: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        # sorted=False: the order of the top-u is the kernel's, but the rows written are gathered with the
        # same indices, so the result does not depend on it
        top = scores.topk(3, sorted=False)[1]
        context = (
            values.mean(dim=-2).unsqueeze(1).expand(values.shape[0], scores.shape[1], values.shape[2]).clone()
        )
        rows = torch.arange(context.size(0)).unsqueeze(-1)
        out = torch.tanh(values[rows, top] * 2.0)
        context[rows, top, :] = out
        return context


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_informer_write_back_converts_exactly(frontend):
    torch.manual_seed(0)
    inputs = (torch.randn(4, 7, 5), torch.randn(4, 7))
    got, expected, rescued = run_fn(ProbSparseWriteBack(), inputs, frontend)
    # torch.export: coremltools refused the (4, 1) and (4, 3) index tensors; TorchScript: the write through
    # the trailing `:` came after the output's producer, and coremltools silently dropped it
    assert "index_put" in rescued
    assert_close_elementwise(got[0], expected[0], rtol=1e-6)


def _assign(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    y[rows, cols] = v
    return y


def _accumulate(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return x.index_put((rows, cols), v, accumulate=True)


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("fn", [_assign, _accumulate], ids=["assign", "accumulate"])
def test_broadcast_indices_negative_and_scalar_values(frontend, fn):
    x = torch.zeros(3, 4, 2)
    rows = torch.tensor([[0], [-1]])  # (2, 1), a negative index
    cols = torch.tensor([1, -2, 0])  # (3,): broadcast to (2, 3)
    v = torch.tensor([1.5, -2.0])  # broadcast over the (2, 3) positions
    got, expected, rescued = run_fn(lambda t: fn(t, rows, cols, v), (x,), frontend)
    assert "index_put" in rescued
    assert_close_elementwise(got[0], expected[0], rtol=0)


def test_repeated_positions_accumulate_and_ints_stay_ints():
    x = torch.zeros(3, 3, dtype=torch.int32)
    rows, cols = torch.tensor([[1], [1]]), torch.tensor([2, 2, 0])
    v = torch.tensor(5, dtype=torch.int32)
    got, expected, _ = run_fn(lambda t: _accumulate(t, rows, cols, v), (x,), "torchscript")
    assert_same_integers(got[0], expected[0])


def test_same_shape_indices_stay_with_coremltools():
    x = torch.zeros(3, 4)
    rows, cols = torch.tensor([0, 2]), torch.tensor([1, 3])
    got, expected, rescued = run_fn(lambda t: _assign(t, rows, cols, torch.tensor(2.0)), (x,), "torch.export")
    assert "index_put" not in rescued
    assert_close_elementwise(got[0], expected[0], rtol=0)


class WriteThroughFullSlice(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        y[torch.tensor([0, 2]), torch.tensor([1, 1]), :] = 7.0  # same-shape indices: coremltools' translation
        return y


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_write_through_a_full_slice_is_not_dropped(frontend):
    # before: TorchScript returned y unwritten (coremltools stopped converting once `y` had a value)
    got, expected, _ = run_fn(WriteThroughFullSlice(), (torch.zeros(3, 2, 4),), frontend)
    assert_close_elementwise(got[0], expected[0], rtol=0)


class WriteIntoPart(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        y[:, 1:][torch.tensor([0, 2]), torch.tensor([1, 0])] = 7.0  # a write into a partial view
        return y


def test_write_into_part_of_a_tensor_is_refused_on_torchscript_not_lost():
    from devicefit.convert import ConversionError, ConvertOptions, convert
    from tests.convert.helpers import source_of

    source = source_of(WriteIntoPart(), (torch.zeros(3, 3),))
    with pytest.raises(ConversionError, match="into part of a tensor"):
        convert(source, ConvertOptions(frontend="torchscript"))
    got, expected, _ = run_fn(WriteIntoPart(), (torch.zeros(3, 3),), "torch.export")
    assert_close_elementwise(got[0], expected[0], rtol=0)
