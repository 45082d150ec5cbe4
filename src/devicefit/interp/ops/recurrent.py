"""Recurrent layers: lstm, gru, rnn, written step by step as the MIL spec states them.

Layouts (MIL, not PyTorch): ``x`` is ``[seq, batch, input]``; lstm gates are stacked ``[i, f, o, z]``
(z = cell gate), its peephole ``[i, f, o]``; gru gates are ``[r, o, z]`` (o = candidate). ``bias`` is the
sum of the input and hidden biases. A ``reverse`` layer returns its sequence in processing order (the
first output row belongs to the last input step); a ``bidirectional`` lstm aligns the backward half with
the input time axis, as coremltools' reference tests and its torch frontend expect.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from devicefit.errors import InputError
from devicefit.interp.registry import bool_, float_, register, str_

# Activation names accepted by the recurrent ops, with the parameter defaults of the matching MIL ops
# (sigmoid_hard: alpha 0.2, beta 0.5; scaled_tanh: alpha 1, beta 1).
_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "linear": lambda t: t,
    "hard_sigmoid": lambda t: torch.clamp(0.2 * t + 0.5, 0.0, 1.0),
    "sigmoid_hard": lambda t: torch.clamp(0.2 * t + 0.5, 0.0, 1.0),
    "scaled_tanh": torch.tanh,
}


def _act(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    try:
        return _ACTIVATIONS[name.lower()]
    except KeyError:
        raise InputError(
            f"unsupported recurrent activation {name!r}; supported: {sorted(_ACTIVATIONS)}"
        ) from None


def _steps(seq_len: int, reverse: bool) -> range:
    return range(seq_len - 1, -1, -1) if reverse else range(seq_len)


def _lstm_direction(x, h, c, w_ih, w_hh, bias, peephole, reverse, acts, clip):
    """One direction; returns (outputs in processing order [seq, b, H], h, c)."""
    rec, cell_act, out_act = acts
    hidden = w_hh.shape[1]
    p_i, p_f, p_o = peephole.split(hidden) if peephole is not None else (None, None, None)
    x_proj = torch.matmul(x, w_ih.T)
    if bias is not None:
        x_proj = x_proj + bias
    outs = []
    for t in _steps(x.shape[0], reverse):
        g_i, g_f, g_o, g_z = (x_proj[t] + h @ w_hh.T).split(hidden, dim=-1)
        if p_i is not None:
            g_i, g_f = g_i + c * p_i, g_f + c * p_f
        i, f, z = rec(g_i), rec(g_f), cell_act(g_z)
        c = f * c + i * z
        if clip is not None:
            c = torch.clamp(c, -clip, clip)
        if p_o is not None:
            g_o = g_o + c * p_o  # the output gate peeks at the *new* cell state
        h = rec(g_o) * out_act(c)
        outs.append(h)
    return torch.stack(outs), h, c


# Use torch's fused LSTM where it computes exactly the MIL recurrence (default activations, no peephole,
# no clip); FAST = False runs only the step-by-step reference. tests/interp/test_fast_paths.py checks both.
FAST = True


def _to_torch_gates(w: torch.Tensor) -> torch.Tensor:
    """MIL gate order [i, f, o, z] -> torch's [i, f, g(=z), o] along axis 0."""
    i, f, o, z = w.chunk(4, dim=0)
    return torch.cat([i, f, z, o], dim=0)


def _lstm_fused(x, h0, c0, w_ih, w_hh, bias, w_ih_b, w_hh_b, bias_b, direction, output_sequence):
    hidden = w_hh.shape[1]

    def params(wi, wh, b):
        b = torch.zeros(4 * hidden, dtype=x.dtype) if b is None else _to_torch_gates(b)
        return [_to_torch_gates(wi), _to_torch_gates(wh), b, torch.zeros_like(b)]

    bidirectional = direction == "bidirectional"
    flat = params(w_ih, w_hh, bias) + (params(w_ih_b, w_hh_b, bias_b) if bidirectional else [])
    dirs = 2 if bidirectional else 1
    h = h0.reshape(h0.shape[0], dirs, hidden).transpose(0, 1).contiguous()
    c = c0.reshape(c0.shape[0], dirs, hidden).transpose(0, 1).contiguous()
    seq_in = x.flip(0) if direction == "reverse" else x
    seq, h_n, c_n = torch._VF.lstm(seq_in, (h, c), flat, True, 1, 0.0, False, bidirectional, False)
    h_out = h_n.transpose(0, 1).reshape(h0.shape)
    c_out = c_n.transpose(0, 1).reshape(c0.shape)
    if output_sequence:
        return seq, h_out, c_out
    if bidirectional:  # the final step of each direction: last row forward, first row backward
        return torch.cat([seq[-1:, :, :hidden], seq[:1, :, hidden:]], dim=-1), h_out, c_out
    return seq[-1:], h_out, c_out


@register(
    "lstm",
    attrs={
        "direction": str_,
        "output_sequence": bool_,
        "recurrent_activation": str_,
        "cell_activation": str_,
        "activation": str_,
        "clip": float_,
    },
)
def lstm(
    x,
    initial_h,
    initial_c,
    weight_ih,
    weight_hh,
    bias=None,
    peephole=None,
    weight_ih_back=None,
    weight_hh_back=None,
    bias_back=None,
    peephole_back=None,
    direction="forward",
    output_sequence=False,
    recurrent_activation="sigmoid",
    cell_activation="tanh",
    activation="tanh",
    clip=None,
):
    if initial_h.shape[0] != x.shape[1] or initial_c.shape[0] != x.shape[1]:
        # NOTE: torch's fused lstm does not check this and crashes the process (segfault) on a mismatch
        raise ValueError(
            f"initial_h / initial_c have batch {initial_h.shape[0]} / {initial_c.shape[0]}, x has batch {x.shape[1]}"
        )
    acts = (_act(recurrent_activation), _act(cell_activation), _act(activation))
    if FAST and (recurrent_activation, cell_activation, activation) == ("sigmoid", "tanh", "tanh"):
        if peephole is None and peephole_back is None and clip is None:
            return _lstm_fused(
                x, initial_h, initial_c, weight_ih, weight_hh, bias, weight_ih_back, weight_hh_back, bias_back,
                direction, output_sequence,
            )  # fmt: skip
    if direction != "bidirectional":
        seq, h, c = _lstm_direction(
            x, initial_h, initial_c, weight_ih, weight_hh, bias, peephole, direction == "reverse", acts, clip
        )
        return (seq if output_sequence else seq[-1:]), h, c
    hidden = weight_hh.shape[1]
    h0f, h0b = initial_h.split(hidden, dim=-1)
    c0f, c0b = initial_c.split(hidden, dim=-1)
    seq_f, h_f, c_f = _lstm_direction(x, h0f, c0f, weight_ih, weight_hh, bias, peephole, False, acts, clip)
    seq_b, h_b, c_b = _lstm_direction(
        x, h0b, c0b, weight_ih_back, weight_hh_back, bias_back, peephole_back, True, acts, clip
    )
    seq_b = seq_b.flip(0)  # align the backward pass with the input's time axis
    if output_sequence:
        out = torch.cat([seq_f, seq_b], dim=-1)
    else:  # the final step of each direction: the last row forward, the first row backward
        out = torch.cat([seq_f[-1:], seq_b[:1]], dim=-1)
    return out, torch.cat([h_f, h_b], dim=-1), torch.cat([c_f, c_b], dim=-1)


_GRU_ATTRS = {"direction": str_, "output_sequence": bool_, "recurrent_activation": str_, "activation": str_}


@register("gru", attrs=_GRU_ATTRS)
def gru(
    x,
    initial_h,
    weight_ih,
    weight_hh,
    bias=None,
    direction="forward",
    output_sequence=False,
    recurrent_activation="sigmoid",
    activation="tanh",
):
    # NOTE: Core ML's gru applies the reset gate to h *before* the recurrent matmul (W_ho (r * h)), unlike
    # PyTorch (r * (W_hn h + b_hn)); that is why the torch frontend lowers nn.GRU to a while_loop instead.
    return gru_ios18(
        x, initial_h, weight_ih, weight_hh, bias, direction, output_sequence, recurrent_activation, activation
    )


@register("gru", since="iOS18", attrs={**_GRU_ATTRS, "reset_after": bool_})
def gru_ios18(
    x,
    initial_h,
    weight_ih,
    weight_hh,
    bias=None,
    direction="forward",
    output_sequence=False,
    recurrent_activation="sigmoid",
    activation="tanh",
    reset_after=False,
    input_bias=None,
):
    # iOS18 adds ``input_bias`` (b_i[r|o|z], beside ``bias``, then the hidden biases b_h[r|o|z]) and
    # ``reset_after``: o = act(W_io x + b_io + r * (W_ho h + b_ho)), PyTorch's nn.GRU (coremltools' iOS18
    # ``test_pytorch_parity`` builds nn.GRU's weights this way; it is marked xfail on the runtime,
    # rdar://128479517, so a device may differ). Without it, the iOS15 gru with both biases summed.
    rec, act = _act(recurrent_activation), _act(activation)
    hidden = weight_hh.shape[1]
    w_hr, w_ho, w_hz = weight_hh.split(hidden)
    x_proj = torch.matmul(x, weight_ih.T)
    if input_bias is not None:
        x_proj = x_proj + input_bias
    b_ho = None
    if bias is not None:
        if reset_after:  # the candidate's hidden bias goes inside the reset: r * (W_ho h + b_ho)
            b_hr, b_ho, b_hz = bias.split(hidden)
            x_proj = x_proj + torch.cat([b_hr, torch.zeros_like(b_ho), b_hz])
        else:
            x_proj = x_proj + bias
    h = initial_h
    outs = []
    for t in _steps(x.shape[0], direction == "reverse"):
        x_r, x_o, x_z = x_proj[t].split(hidden, dim=-1)
        r = rec(x_r + h @ w_hr.T)
        z = rec(x_z + h @ w_hz.T)
        if reset_after:
            h_o = h @ w_ho.T
            o = act(x_o + r * (h_o if b_ho is None else h_o + b_ho))
        else:
            o = act(x_o + (r * h) @ w_ho.T)
        h = (1 - z) * o + z * h
        outs.append(h)
    seq = torch.stack(outs)
    return (seq if output_sequence else seq[-1:]), h


@register("rnn", attrs={"direction": str_, "output_sequence": bool_, "activation": str_})
def rnn(
    x,
    initial_h,
    weight_ih,
    weight_hh,
    bias=None,
    direction="forward",
    output_sequence=False,
    activation="tanh",
):
    act = _act(activation)
    x_proj = torch.matmul(x, weight_ih.T)
    if bias is not None:
        x_proj = x_proj + bias
    h = initial_h
    outs = []
    for t in _steps(x.shape[0], direction == "reverse"):
        h = act(x_proj[t] + h @ weight_hh.T)
        outs.append(h)
    seq = torch.stack(outs)
    return (seq if output_sequence else seq[-1:]), h
