"""Model state (iOS18): read_state and coreml_update_state.

State values live in ``ctx.states`` (state name -> tensor) for the whole run, not in the SSA environment:
a state is one mutable buffer, so a read after an update must see the update even though both ops name
the same (unchanged) state input. The runner returns the final ``ctx.states`` to the caller.
"""

from __future__ import annotations

import torch

from devicefit.errors import InputError
from devicefit.interp.registry import OpContext, register


def _state_name(ctx: OpContext, param: str) -> str:
    name = ctx.input_names.get(param)
    if ctx.states is None or not isinstance(name, str) or name not in ctx.states:
        known = sorted(ctx.states or {})
        raise InputError(
            f"op {ctx.name!r} uses state {name!r}, which this run does not hold; states: {known}"
        )
    return name


@register("read_state", since="iOS18")
def read_state(input: torch.Tensor, ctx: OpContext) -> torch.Tensor:
    assert ctx.states is not None
    # A copy: later updates of the state must not change values already read.
    return ctx.states[_state_name(ctx, "input")].clone()


@register("coreml_update_state", since="iOS18")
def coreml_update_state(state: torch.Tensor, value: torch.Tensor, ctx: OpContext) -> torch.Tensor:
    assert ctx.states is not None
    name = _state_name(ctx, "state")
    current = ctx.states[name]
    if tuple(value.shape) != tuple(current.shape):
        raise InputError(
            f"op {ctx.name!r} writes shape {tuple(value.shape)} into state {name!r} of {tuple(current.shape)}"
        )
    ctx.states[name] = value.to(current.dtype).clone()
    return value
