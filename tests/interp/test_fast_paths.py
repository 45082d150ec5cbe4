"""Fast kernel variants agree with the reference formulas they replace (the naive kernel is the spec)."""

from __future__ import annotations

import pytest
import torch

from devicefit.interp.ops import indexing, normalization, recurrent, resize


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


@pytest.mark.parametrize("mode", ["STRICT_ALIGN_CORNERS", "UNALIGN_CORNERS"])
@pytest.mark.parametrize(("size_in", "size_out"), [((6, 5), (12, 10)), ((7, 9), (12, 5)), ((4, 4), (9, 13))])
def test_bilinear_fused_equals_reference(mode, size_in, size_out):
    torch.manual_seed(2)
    x = torch.randn(2, 3, *size_in)
    fast = resize._bilinear(x, *size_out, mode)
    ref = resize.bilinear_reference(x, *size_out, mode)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)


def test_loaded_weights_are_aligned():
    from tests.helpers import convert

    model = torch.nn.Sequential(*[torch.nn.Conv2d(3 if i == 0 else 5, 5, 3) for i in range(4)]).eval()
    from devicefit import interp

    prog = interp.load(convert(model, torch.randn(1, 3, 16, 16)))
    weights = [v for v in prog.plan.constants.values() if isinstance(v, torch.Tensor) and v.numel() > 1]
    assert weights and all(w.data_ptr() % 64 == 0 for w in weights)


@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 4, 6, 7), (1, 2, 3, 4, 5)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_and_instance_norm_fused_equal_reference(shape, affine):
    torch.manual_seed(3)
    x = torch.randn(shape) * 2 + 0.5
    c = shape[1]
    gamma, beta = (torch.randn(c), torch.randn(c)) if affine else (None, None)
    mean, var = torch.randn(c), torch.rand(c) + 0.5
    torch.testing.assert_close(
        normalization.batch_norm(x, mean, var, gamma, beta, 1e-3),
        normalization.batch_norm_reference(x, mean, var, gamma, beta, 1e-3),
        rtol=1e-5,
        atol=1e-5,
    )
    torch.testing.assert_close(
        normalization.instance_norm(x, gamma, beta, 1e-3),
        normalization.instance_norm_reference(x, gamma, beta, 1e-3),
        rtol=1e-5,
        atol=1e-5,
    )
