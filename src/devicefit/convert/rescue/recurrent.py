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
    "lstm.input", "coremltools 9.0 has no torch.export translation of nn.LSTM (its TorchScript one, reused)"
)
def lstm_export(context: Any, node: Any) -> None:
    _as_tuple(context, node, frontend().lstm, 3)
