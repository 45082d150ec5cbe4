"""Fast kernel variants agree with the reference formulas they replace (the naive kernel is the spec)."""

from __future__ import annotations

import pytest
import torch

from devicefit.interp.ops import indexing, normalization, recurrent


@pytest.mark.parametrize("shape", [(2, 5, 8), (3, 4), (2, 3, 4, 6)])
@pytest.mark.parametrize("naxes", [1, 2])
def test_layer_norm_fused_equals_reference(shape, naxes, monkeypatch):
    torch.manual_seed(0)
    x = torch.randn(shape) * 3 + 1
    axes = list(range(len(shape) - naxes, len(shape)))
    gamma, beta = torch.randn(shape[-naxes:]), torch.randn(shape[-naxes:])
    fast = normalization.layer_norm(x, axes=axes, gamma=gamma, beta=beta, epsilon=1e-5)
    monkeypatch.setattr(normalization, "FAST", False)
    ref = normalization.layer_norm(x, axes=axes, gamma=gamma, beta=beta, epsilon=1e-5)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)


def _lstm_inputs(direction: str, batch: int = 3, seq: int = 5, inp: int = 4, hidden: int = 6):
    torch.manual_seed(1)
    dirs = 2 if direction == "bidirectional" else 1
    x = torch.randn(seq, batch, inp)
    h0, c0 = torch.randn(batch, dirs * hidden), torch.randn(batch, dirs * hidden)
    w = [torch.randn(4 * hidden, inp), torch.randn(4 * hidden, hidden), torch.randn(4 * hidden)]
    back = [torch.randn(4 * hidden, inp), torch.randn(4 * hidden, hidden), torch.randn(4 * hidden)]
    kwargs = dict(x=x, initial_h=h0, initial_c=c0, weight_ih=w[0], weight_hh=w[1], bias=w[2])
    if dirs == 2:
        kwargs.update(weight_ih_back=back[0], weight_hh_back=back[1], bias_back=back[2])
    return kwargs


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("output_sequence", [True, False])
def test_lstm_fused_equals_step_by_step(direction, output_sequence, monkeypatch):
    kwargs = _lstm_inputs(direction)
    fast = recurrent.lstm(**kwargs, direction=direction, output_sequence=output_sequence)
    monkeypatch.setattr(recurrent, "FAST", False)
    ref = recurrent.lstm(**kwargs, direction=direction, output_sequence=output_sequence)
    assert len(fast) == len(ref) == 3
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_lstm_with_peephole_uses_reference(monkeypatch):
    kwargs = _lstm_inputs("forward")
    peephole = torch.randn(3 * 6)
    calls = []
    monkeypatch.setattr(recurrent, "_lstm_fused", lambda *a, **k: calls.append(1))
    out = recurrent.lstm(**kwargs, peephole=peephole, output_sequence=True)
    assert not calls and out[0].shape == (5, 3, 6)


def test_gather_fast_path_and_errors():
    x = torch.arange(24.0).reshape(2, 3, 4)
    idx = torch.tensor([[2, 0], [1, 1]], dtype=torch.int32)
    out = indexing.gather(x, idx, axis=1)
    assert out.shape == (2, 2, 2, 4)
    torch.testing.assert_close(out, x[:, idx.long()])
    neg = indexing.gather(x, torch.tensor([-1], dtype=torch.int32), axis=2)
    torch.testing.assert_close(neg, x[:, :, 3:4])
    with pytest.raises(Exception, match="out of range"):
        indexing.gather(x, torch.tensor([3], dtype=torch.int32), axis=1)
