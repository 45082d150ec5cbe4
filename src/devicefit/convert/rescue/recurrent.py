"""Recurrent layers coremltools 9.0 refuses: a bidirectional ``nn.RNN`` ("Bidirectional simple RNN not
supported"), and ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` through torch.export ("Unsupported fx node rnn_tanh /
gru / lstm": coremltools registers the TorchScript names only, and reads the flags as graph values).

Found by the differential fuzzer. The simple RNN is built layer by layer from MIL ``rnn`` in the forward
direction only: the backward half runs forward over the time-reversed input and its outputs are reversed back,
so no reading of MIL's ``reverse`` output order is involved. torch.export's GRU / LSTM go to coremltools' own
TorchScript translation once their literal flags are graph constants.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import const_value, frontend
from devicefit.convert.rescue._registry import DELEGATED, rescue

_fresh = itertools.count()


def _simple_rnn(context: Any, node: Any, activation: str) -> object:
    """``rnn_tanh`` / ``rnn_relu``: ``(input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
    batch_first)``; outputs the sequence and the stacked final states ``(layers * directions, B, H)``."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, expected=9)
    x, h0, weights = inputs[0], inputs[1], list(inputs[2])
    has_bias = bool(const_value(inputs[3]))
    layers = int(const_value(inputs[4]))
    bidirectional = bool(const_value(inputs[7]))
    batch_first = bool(const_value(inputs[8]))
    if not bidirectional and context.frontend == _torchscript():  # one direction: coremltools' translation
        frontend()._add_simple_rnn(context, node, activation)
        return DELEGATED
    directions = 2 if bidirectional else 1
    per = 4 if has_bias else 2
    if len(weights) != per * layers * directions:
        raise ValueError(f"rnn: {len(weights)} weights for {layers} layer(s) x {directions} direction(s)")
    if batch_first:
        x = mb.transpose(x=x, perm=[1, 0, 2])
    states = []
    for layer in range(layers):
        outs = []
        for direction in range(directions):
            k = layer * directions + direction
            w = weights[k * per : (k + 1) * per]
            bias = mb.add(x=w[2], y=w[3]) if has_bias else None
            start = mb.squeeze(
                x=mb.slice_by_index(x=h0, begin=[k, 0, 0], end=[k + 1, 0, 0], end_mask=[False, True, True]),
                axes=[0],
            )
            seq = mb.reverse(x=x, axes=[0]) if direction else x
            out, state = mb.rnn(
                x=seq,
                initial_h=start,
                weight_ih=w[0],
                weight_hh=w[1],
                bias=bias,
                output_sequence=True,
                activation=activation,
            )
            outs.append(mb.reverse(x=out, axes=[0]) if direction else out)
            states.append(state)
        x = mb.concat(values=outs, axis=2) if directions == 2 else outs[0]
    if batch_first:
        x = mb.transpose(x=x, perm=[1, 0, 2])
    stacked = mb.stack(values=states, axis=0) if len(states) > 1 else mb.expand_dims(x=states[0], axes=[0])
    if len(node.outputs) == 1:  # torch.export: one node, a tuple read by getitem
        context.add((x, stacked), torch_name=node.name)
        return None
    context.add(mb.identity(x=x, name=node.outputs[0]), torch_name=node.outputs[0])
    context.add(mb.identity(x=stacked, name=node.outputs[1]), torch_name=node.outputs[1])
    return None


@rescue(
    "rnn_tanh",
    "override: coremltools 9.0 refuses a bidirectional nn.RNN and nn.RNN through torch.export; a one-direction "
    "TorchScript RNN stays with coremltools",
    override=True,
    aliases=("rnn_tanh.input",),
)
def rnn_tanh(context: Any, node: Any) -> object:
    return _simple_rnn(context, node, "tanh")


@rescue(
    "rnn_relu",
    "override: coremltools 9.0 refuses a bidirectional nn.RNN(nonlinearity='relu') and it through torch.export",
    override=True,
    aliases=("rnn_relu.input",),
)
def rnn_relu(context: Any, node: Any) -> object:
    return _simple_rnn(context, node, "relu")


def _torchscript() -> Any:
    from coremltools.converters.mil.frontend.torch.utils import TorchFrontend

    return TorchFrontend.TORCHSCRIPT


def _with_constant_flags(context: Any, node: Any) -> Any:
    """A copy of ``node`` whose literal arguments (torch.export's bools / ints / floats) are graph constants, as
    coremltools' TorchScript translations read them (``inputs[3].val``)."""
    from coremltools.converters.mil.mil import Builder as mb

    shim = copy.copy(node)
    names = []
    for value in node.inputs:
        if isinstance(value, bool | int | float | np.generic):
            name = f"{node.name}_flag{next(_fresh)}"
            context.add(mb.const(val=value, name=name), torch_name=name)
            names.append(name)
        else:
            names.append(value)
    shim.inputs = names
    return shim


def _as_tuple(context: Any, node: Any, translate: Any, count: int) -> None:
    """Run a TorchScript translation that adds ``count`` named outputs, and bind them as the one tuple
    torch.export's ``getitem`` nodes read."""
    shim = _with_constant_flags(context, node)
    shim.outputs = [f"{node.name}_out{k}" for k in range(count)]
    translate(context, shim)
    context.add(tuple(context[name] for name in shim.outputs), torch_name=node.name)


@rescue(
    "gru.input", "coremltools 9.0 has no torch.export translation of nn.GRU (its TorchScript one, reused)"
)
def gru_export(context: Any, node: Any) -> None:
    _as_tuple(context, node, frontend().gru, 2)


@rescue(
    "lstm.input",
    "coremltools 9.0 has no torch.export translation of nn.LSTM (its TorchScript one, reused; proj_size: "
    "devicefit's)",
)
def lstm_export(context: Any, node: Any) -> None:
    if _projected_lstm(context, node) is None:
        _as_tuple(context, node, frontend().lstm, 3)


@rescue(
    "lstm",
    "override: coremltools 9.0 refuses nn.LSTM(proj_size=...) ('Incorrect weights shape'; MIL lstm has no "
    "projection); every other LSTM stays with coremltools",
    override=True,
)
def lstm(context: Any, node: Any) -> object:
    if _projected_lstm(context, node) is None:
        frontend().lstm(context, node)
        return DELEGATED
    return None


def _projected_lstm(context: Any, node: Any) -> object:
    """``nn.LSTM(proj_size=P)``, unrolled over a static sequence length: per step ``gates = x W_ih^T + h W_hh^T +
    b``, ``c = f c + i g``, ``h = (o tanh(c)) W_hr^T`` (PyTorch's gate order i, f, g, o). None (nothing added) when
    the LSTM has no projection."""
    from coremltools.converters.mil.mil import Builder as mb

    inputs = frontend()._get_inputs(context, node, expected=9)
    if not isinstance(inputs[1], list | tuple) or not isinstance(inputs[2], list | tuple):
        return None  # the packed-sequence form (data, batch_sizes, hx, params, ...): coremltools' translation
    x, state, weights = inputs[0], list(inputs[1]), list(inputs[2])
    has_bias, layers = bool(const_value(inputs[3])), int(const_value(inputs[4]))
    directions = 2 if bool(const_value(inputs[7])) else 1
    per = 5 if has_bias else 3
    if len(weights) != per * layers * directions:
        return None  # no projection: coremltools' translation
    batch_first = bool(const_value(inputs[8]))
    if batch_first:
        x = mb.transpose(x=x, perm=[1, 0, 2])
    steps = x.shape[0]
    if not isinstance(steps, int | np.integer):
        raise NotImplementedError("nn.LSTM(proj_size=...) needs a sequence length known at conversion")
    finals_h, finals_c = [], []
    for layer in range(layers):
        outs = []
        for direction in range(directions):
            k = layer * directions + direction
            w = weights[k * per : (k + 1) * per]
            seq = mb.reverse(x=x, axes=[0]) if direction else x
            proj = mb.matmul(x=seq, y=w[0], transpose_y=True)
            if has_bias:
                proj = mb.add(x=proj, y=mb.add(x=w[2], y=w[3]))
            h, c = _state_row(state[0], k), _state_row(state[1], k)
            rows = []
            for t in range(int(steps)):
                gates = mb.add(x=_state_row(proj, t), y=mb.matmul(x=h, y=w[1], transpose_y=True))
                i, f, g, o = mb.split(x=gates, num_splits=4, axis=-1)
                c = mb.add(x=mb.mul(x=mb.sigmoid(x=f), y=c), y=mb.mul(x=mb.sigmoid(x=i), y=mb.tanh(x=g)))
                h = mb.matmul(x=mb.mul(x=mb.sigmoid(x=o), y=mb.tanh(x=c)), y=w[-1], transpose_y=True)
                rows.append(h)
            outs.append(mb.stack(values=rows[::-1] if direction else rows, axis=0))
            finals_h.append(h)
            finals_c.append(c)
        x = mb.concat(values=outs, axis=2) if directions == 2 else outs[0]
    if batch_first:
        x = mb.transpose(x=x, perm=[1, 0, 2])
    results = (x, mb.stack(values=finals_h, axis=0), mb.stack(values=finals_c, axis=0))
    if len(node.outputs) == 1:  # torch.export: one node, a tuple read by getitem
        context.add(results, torch_name=node.name)
    else:
        for name, value in zip(node.outputs, results):
            context.add(mb.identity(x=value, name=name), torch_name=name)
    return results


def _state_row(state: Any, k: int) -> Any:
    """Row ``k`` of a ``(rows, B, size)`` tensor (an initial state's layer-direction, a sequence's step)."""
    from coremltools.converters.mil.mil import Builder as mb

    row = mb.slice_by_index(x=state, begin=[k, 0, 0], end=[k + 1, 0, 0], end_mask=[False, True, True])
    return mb.squeeze(x=row, axes=[0])
