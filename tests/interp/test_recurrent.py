"""Recurrent layers: nn.LSTM (lowered to MIL lstm) and nn.GRU (lowered to a while_loop) against PyTorch,
plus the MIL lstm / gru / rnn kernels against step-by-step numpy references of the MIL spec."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devicefit import interp
from devicefit.interp.ops import recurrent
from tests.helpers import convert, rel_error


class _First(torch.nn.Module):
    """Return the sequence output and final hidden state of a recurrent layer."""

    def __init__(self, layer: torch.nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        out, state = self.layer(x)
        h = state[0] if isinstance(state, tuple) else state
        return out, h


LSTM_CASES = {
    "1layer": dict(num_layers=1, bidirectional=False, batch_first=False),
    "2layer_batch_first": dict(num_layers=2, bidirectional=False, batch_first=True),
    "bidirectional": dict(num_layers=1, bidirectional=True, batch_first=False),
    "2layer_bidirectional_batch_first": dict(num_layers=2, bidirectional=True, batch_first=True),
}


def _check(
    module: torch.nn.Module,
    x: torch.Tensor,
    target: str,
    ops: set[str],
    precision: str = "fp32",
    tol: float = 1e-5,
) -> None:
    module = module.eval()
    prog = interp.load(convert(module, x, target=target, precision=precision))
    assert ops <= set(prog.op_counts), prog.op_counts
    out = prog.run({"x": x.numpy()}, precision=precision, strict=True)
    with torch.no_grad():
        expected = [t.numpy() for t in module(x)]
    actual = [out[o.name] for o in prog.outputs]
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        assert rel_error(a, e) <= tol


@pytest.mark.parametrize("target", ["iOS16", "iOS18"])
@pytest.mark.parametrize("case", list(LSTM_CASES))
def test_lstm_matches_torch(case, target):
    torch.manual_seed(1)
    cfg = LSTM_CASES[case]
    layer = torch.nn.LSTM(4, 5, **cfg)
    x = torch.randn(2, 6, 4) if cfg["batch_first"] else torch.randn(6, 2, 4)
    _check(_First(layer), x, target, {"lstm"})


@pytest.mark.parametrize("target", ["iOS16", "iOS18"])
def test_gru_matches_torch(target):
    torch.manual_seed(2)
    layer = torch.nn.GRU(4, 5, batch_first=True)
    _check(_First(layer), torch.randn(2, 6, 4), target, {"while_loop"})


def test_lstm_fp16_emulation_stays_close():
    torch.manual_seed(3)
    layer = torch.nn.LSTM(4, 5, bidirectional=True)
    _check(_First(layer), torch.randn(6, 2, 4), "iOS18", {"lstm"}, precision="fp16", tol=1e-2)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_matches_torch(nonlinearity):
    torch.manual_seed(4)
    layer = torch.nn.RNN(4, 5, nonlinearity=nonlinearity)
    _check(_First(layer), torch.randn(6, 2, 4), "iOS16", {"rnn"})


# ------------------------------------------------------------ MIL-spec references (numpy, one step at a time)
def _sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def _np_lstm(x, h, c, w_ih, w_hh, b, p, clip, reverse):
    hidden = h.shape[-1]
    wi, wf, wo, wz = np.split(w_ih, 4)
    ri, rf, ro, rz = np.split(w_hh, 4)
    bi, bf, bo, bz = np.split(b, 4)
    pi, pf, po = np.split(p, 3)
    outs = []
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    for t in steps:
        xt = x[t]
        i = _sig(xt @ wi.T + h @ ri.T + bi + c * pi)
        f = _sig(xt @ wf.T + h @ rf.T + bf + c * pf)
        z = np.tanh(xt @ wz.T + h @ rz.T + bz)
        c = np.clip(f * c + i * z, -clip, clip)
        o = _sig(xt @ wo.T + h @ ro.T + bo + c * po)
        h = o * np.tanh(c)
        outs.append(h)
    assert h.shape[-1] == hidden
    return np.stack(outs), h, c


@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_kernel_peephole_clip_matches_spec(reverse):
    rng = np.random.default_rng(0)
    seq, batch, inp, hid, clip = 5, 2, 3, 4, 0.3
    x = rng.standard_normal((seq, batch, inp))
    h0, c0 = rng.standard_normal((batch, hid)), rng.standard_normal((batch, hid))
    w_ih, w_hh = rng.standard_normal((4 * hid, inp)), rng.standard_normal((4 * hid, hid))
    b, p = rng.standard_normal(4 * hid), rng.standard_normal(3 * hid)
    want_seq, want_h, want_c = _np_lstm(x, h0, c0, w_ih, w_hh, b, p, clip, reverse)
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    seq_out, h, c = recurrent.lstm(
        t(x), t(h0), t(c0), t(w_ih), t(w_hh), t(b), t(p),
        direction="reverse" if reverse else "forward", output_sequence=True, clip=clip,
    )  # fmt: skip
    assert np.abs(c.numpy()).max() <= clip + 1e-12  # the clip really bounds the cell state
    for got, want in ((seq_out, want_seq), (h, want_h), (c, want_c)):
        assert rel_error(got.numpy(), want) <= 1e-12
    last, _, _ = recurrent.lstm(t(x), t(h0), t(c0), t(w_ih), t(w_hh), t(b), t(p), clip=clip)
    assert last.shape == (1, batch, hid)


def test_gru_and_rnn_kernels_match_spec():
    rng = np.random.default_rng(1)
    seq, batch, inp, hid = 4, 2, 3, 5
    x, h0 = rng.standard_normal((seq, batch, inp)), rng.standard_normal((batch, hid))
    w_ih, w_hh, b = (
        rng.standard_normal((3 * hid, inp)),
        rng.standard_normal((3 * hid, hid)),
        rng.standard_normal(3 * hid),
    )
    # MIL gru: gates [r, o, z]; the reset gate scales h before the recurrent matmul.
    wr, wo, wz = np.split(w_ih, 3)
    rr, ro, rz = np.split(w_hh, 3)
    br, bo, bz = np.split(b, 3)
    h, outs = h0, []
    for k in range(seq - 1, -1, -1):
        r = _sig(x[k] @ wr.T + h @ rr.T + br)
        z = _sig(x[k] @ wz.T + h @ rz.T + bz)
        o = np.tanh(x[k] @ wo.T + (r * h) @ ro.T + bo)
        h = (1 - z) * o + z * h
        outs.append(h)
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    seq_out, h_out = recurrent.gru(
        t(x), t(h0), t(w_ih), t(w_hh), t(b), direction="reverse", output_sequence=True
    )
    assert rel_error(seq_out.numpy(), np.stack(outs)) <= 1e-12
    assert rel_error(h_out.numpy(), h) <= 1e-12

    w_ih1, w_hh1, b1 = w_ih[:hid], w_hh[:hid], b[:hid]
    h, outs = h0, []
    for k in range(seq):
        h = np.maximum(x[k] @ w_ih1.T + h @ w_hh1.T + b1, 0)
        outs.append(h)
    last, h_out = recurrent.rnn(t(x), t(h0), t(w_ih1), t(w_hh1), t(b1), activation="relu")
    assert rel_error(last.numpy(), outs[-1][None]) <= 1e-12
    assert rel_error(h_out.numpy(), h) <= 1e-12


def _torch_gru(rng, seq=4, batch=2, inp=3, hidden=5):
    """An nn.GRU with random weights and biases, its MIL [r, o, z] weight stacks, and an input + initial state."""
    module = torch.nn.GRU(inp, hidden)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.from_numpy(rng.standard_normal(p.shape).astype(np.float32)))

    def mil(t: torch.Tensor) -> np.ndarray:  # PyTorch stacks [r, z, n]; MIL [r, o, z] (o = n)
        r, z, n = t.detach().numpy().reshape(3, hidden, -1)
        return np.concatenate([r, n, z]).reshape(t.shape)

    weights = {k: mil(getattr(module, f"{k}_l0")) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    x = rng.standard_normal((seq, batch, inp)).astype(np.float32)
    h0 = rng.standard_normal((batch, hidden)).astype(np.float32)
    return module, weights, x, h0


def _mil_gru(w: dict[str, np.ndarray], split_bias: bool = True, **options):  # type: ignore[no-untyped-def]
    """A MIL program body running ``mb.gru`` on ``w`` (``_torch_gru``'s stacks): biases as iOS18's
    ``input_bias`` + ``bias``, or (``split_bias=False``) summed into ``bias`` as before iOS18."""
    from coremltools.converters.mil import Builder as mb

    biases = (
        {"input_bias": w["bias_ih"], "bias": w["bias_hh"]}
        if split_bias
        else {"bias": w["bias_ih"] + w["bias_hh"]}
    )

    def prog(x, h0):  # type: ignore[no-untyped-def]
        return mb.gru(
            x=x,
            initial_h=h0,
            weight_ih=w["weight_ih"],
            weight_hh=w["weight_hh"],
            output_sequence=True,
            **biases,
            **options,
        )

    return prog


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_ios18_gru_reset_after_with_input_bias_is_pytorchs_gru(direction):
    """iOS18's ``reset_after`` + ``input_bias`` (coremltools' iOS18 parity test): r * (W_ho h + b_ho), as nn.GRU.
    The kernel refused both inputs at load before."""
    from tests.interp import milprog

    module, w, x, h0 = _torch_gru(np.random.default_rng(18))
    prog = _mil_gru(w, reset_after=True, direction=direction)
    seq, h = milprog.run(prog, {"x": x, "h0": h0}, target="iOS18", op="gru")
    feed = x[::-1].copy() if direction == "reverse" else x  # a reverse layer reads the sequence back to front
    want_seq, want_h = module(torch.from_numpy(feed), torch.from_numpy(h0)[None])
    np.testing.assert_allclose(seq, want_seq.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h, want_h[0].detach().numpy(), rtol=1e-5, atol=1e-5)


def test_ios18_gru_without_reset_after_sums_the_two_biases():
    from tests.interp import milprog

    _, w, x, h0 = _torch_gru(np.random.default_rng(19))
    feeds = {"x": x, "h0": h0}
    got = milprog.run(_mil_gru(w), feeds, target="iOS18")
    want = milprog.run(_mil_gru(w, split_bias=False), feeds, target="iOS17")
    for g, e in zip(got, want, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-6)
    # and reset_after changes the answer (the test above is not vacuous)
    after = milprog.run(_mil_gru(w, reset_after=True), feeds, target="iOS18")
    assert np.abs(after[0] - got[0]).max() > 1e-3
