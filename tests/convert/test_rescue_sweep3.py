"""Translations the third outside-model sweep needed (devicefit/convert/rescue/sweep3.py), against PyTorch."""

from __future__ import annotations

import pytest
import torch

from tests.convert.elementwise_helpers import check_rescued


@pytest.mark.parametrize("cell", ["GRUCell", "LSTMCell"])
def test_recurrent_cells_convert_on_torchscript(cell):
    # a GRU seq2seq decoder (GRUCell per step): "3 unsupported op(s): aten::unsafe_chunk ...": TorchScript
    # inlines GRUCell / LSTMCell into linear + unsafe_chunk, which coremltools 9.0 does not know
    torch.manual_seed(0)
    module = getattr(torch.nn, cell)(6, 5).eval().requires_grad_(False)  # held by a lambda: constants
    x, h = torch.randn(3, 6), torch.randn(3, 5)
    if cell == "LSTMCell":
        check_rescued(
            lambda a, b: module(a, (b, b * 0.5)), (x, h), "torchscript", "unsafe_chunk", 1e-5, atol=1e-6
        )
    else:
        check_rescued(lambda a, b: module(a, b), (x, h), "torchscript", "unsafe_chunk", 1e-5, atol=1e-6)


@pytest.mark.parametrize(("chunks", "dim"), [(3, 1), (2, 0), (4, -1), (3, 2)])
def test_unsafe_chunk_splits_like_chunk(chunks, dim):
    # uneven sizes too: 7 rows in 2 chunks are 4 + 3, 5 in 3 are 2 + 2 + 1; 5 in 4 are 2 + 2 + 1 (three pieces)
    x = torch.arange(4 * 7 * 5, dtype=torch.float32).reshape(4, 7, 5)
    check_rescued(
        lambda t: [p * 1 for p in torch.unsafe_chunk(t, chunks, dim)], (x,), "torchscript", "unsafe_chunk"
    )


def test_unsafe_split_splits_like_split():
    x = torch.arange(2 * 7, dtype=torch.float32).reshape(2, 7)
    check_rescued(lambda t: [p + 0 for p in torch.unsafe_split(t, 3, 1)], (x,), "torchscript", "unsafe_split")
