"""Recurrent layers coremltools 9.0 refuses (rescue/recurrent.py): a bidirectional ``nn.RNN`` (tanh / relu,
stacked, batch_first, initial state), and ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` through torch.export. Found by
the differential fuzzer; fp32 and fp16 through the interpreter against PyTorch."""

from __future__ import annotations

import pytest
import torch

from tests.convert.elementwise_helpers import check_rescued


class _WithState(torch.nn.Module):
    """The layer applied with a constant initial state (every output: the sequence and the final states)."""

    def __init__(self, layer: torch.nn.Module, state: tuple[torch.Tensor, ...]) -> None:
        super().__init__()
        self.layer = layer
        for k, s in enumerate(state):
            self.register_buffer(f"s{k}", s)
        self.count = len(state)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        state = tuple(getattr(self, f"s{k}") for k in range(self.count))
        out, h = self.layer(x, state if len(state) > 1 else state[0])
        return (out, *h) if isinstance(h, tuple) else (out, h)


def _layer(kind: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return getattr(torch.nn, kind)(3, 4, **kwargs).eval()


def _x(batch_first: bool) -> torch.Tensor:
    return torch.randn(2, 5, 3) if batch_first else torch.randn(5, 2, 3)


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"bidirectional": True},
        {"bidirectional": True, "num_layers": 2, "nonlinearity": "relu"},
        {"bidirectional": True, "batch_first": True, "bias": False},
    ],
)
def test_bidirectional_rnn(frontend, kwargs):
    layer = _layer("RNN", **kwargs)
    x = _x(kwargs.get("batch_first", False))
    op = "rnn_relu" if kwargs.get("nonlinearity") == "relu" else "rnn_tanh"
    check_rescued(layer, (x,), frontend, op, rtol=1e-5, atol=1e-6)


def test_bidirectional_rnn_with_an_initial_state():
    layer = _layer("RNN", bidirectional=True, num_layers=2)
    state = (torch.randn(4, 2, 4, generator=torch.Generator().manual_seed(1)),)
    check_rescued(_WithState(layer, state), (_x(False),), "torchscript", "rnn_tanh", rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("kind", "kwargs", "op"),
    [
        ("RNN", {"num_layers": 2}, "rnn_tanh"),
        ("GRU", {"bidirectional": True, "num_layers": 2}, "gru.input"),
        ("GRU", {"batch_first": True}, "gru.input"),
        ("LSTM", {"bidirectional": True, "batch_first": True}, "lstm.input"),
    ],
)
def test_recurrent_layers_through_torch_export(kind, kwargs, op):
    layer = _layer(kind, **kwargs)
    x = _x(kwargs.get("batch_first", False))
    check_rescued(layer, (x,), "torch.export", op, rtol=1e-5, atol=1e-6)


def test_lstm_through_torch_export_with_an_initial_state():
    layer = _layer("LSTM", num_layers=2)
    gen = torch.Generator().manual_seed(2)
    state = (torch.randn(2, 2, 4, generator=gen), torch.randn(2, 2, 4, generator=gen))
    check_rescued(_WithState(layer, state), (_x(False),), "torch.export", "lstm.input", rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"proj_size": 2},
        {"proj_size": 3, "bias": False},
        {"proj_size": 1, "bidirectional": True, "num_layers": 2},
    ],
)
def test_lstm_with_a_projection(frontend, kwargs):
    """coremltools refused nn.LSTM(proj_size=...) ("Incorrect weights shape"): unrolled steps with W_hr."""
    layer = _layer("LSTM", batch_first=True, **kwargs)
    op = "lstm" if frontend == "torchscript" else "lstm.input"
    x = _x(True)
    check_rescued(layer, (x,), frontend, op, rtol=1e-5, atol=1e-6)


def test_lstm_with_a_projection_and_an_initial_state():
    layer = _layer("LSTM", proj_size=2)
    gen = torch.Generator().manual_seed(3)
    state = (torch.randn(1, 2, 2, generator=gen), torch.randn(1, 2, 4, generator=gen))
    check_rescued(_WithState(layer, state), (_x(False),), "torchscript", "lstm", rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("kind", "kwargs", "frontend", "op"),
    [
        ("RNN", {"bidirectional": True, "num_layers": 2}, "torchscript", "rnn_tanh"),
        ("GRU", {"bidirectional": True}, "torch.export", "gru.input"),
        ("LSTM", {"proj_size": 2, "bidirectional": True}, "torch.export", "lstm.input"),
    ],
)
def test_recurrent_layers_in_fp16(kind, kwargs, frontend, op):
    """The fp16 package within fp16 storage error of PyTorch (5 steps, 1-2 layers)."""
    layer = _layer(kind, **kwargs)
    check_rescued(layer, (_x(False),), frontend, op, precision="fp16", rtol=1e-2, atol=1e-2)
