"""Stateful models (iOS18): a KV-cache style buffer updated in place (slice_update + coreml_update_state)
and an accumulator, run for two steps carrying the returned state, against PyTorch doing the same."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devicefit import interp
from devicefit.errors import InputError
from tests.helpers import rel_error

CACHE_SHAPE = (1, 2, 4, 3)


class KVCache(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("cache", torch.zeros(CACHE_SHAPE))
        self.register_buffer("acc", torch.zeros(1, 3))

    def forward(self, x, pos):
        p = pos[0]
        self.cache[:, :, p : p + 1, :] = x
        self.acc.add_(x.sum(dim=(1, 2)))
        return self.cache.sum(dim=2) * 2.0, self.acc * 1.0


@pytest.fixture(scope="module")
def stateful():
    from devicefit._lazy import coremltools

    ct = coremltools()
    example = (torch.zeros(1, 2, 1, 3), torch.tensor([0], dtype=torch.int32))
    traced = torch.jit.trace(KVCache().eval(), example)
    model = ct.convert(
        traced,
        inputs=[
            ct.TensorType(name="x", shape=(1, 2, 1, 3)),
            ct.TensorType(name="pos", shape=(1,), dtype=np.int32),
        ],
        # Core ML states are fp16 buffers.
        states=[
            ct.StateType(wrapped_type=ct.TensorType(shape=CACHE_SHAPE, dtype=np.float16), name="cache"),
            ct.StateType(wrapped_type=ct.TensorType(shape=(1, 3), dtype=np.float16), name="acc"),
        ],
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS18,
        compute_precision=ct.precision.FLOAT32,
    )
    return interp.load(model)


def _steps():
    rng = np.random.default_rng(0)
    # multiples of 1/8: exact in the fp16 state, so fp32 runs compare tightly with torch
    return [(np.round(rng.uniform(-2, 2, (1, 2, 1, 3)) * 8) / 8).astype(np.float32) for _ in range(2)]


@pytest.mark.parametrize("precision, tol", [("fp32", 1e-6), ("fp16", 2e-3)])
def test_two_steps_carrying_state_match_torch(stateful, precision, tol):
    prog = stateful
    assert {s.name for s in prog.states} == {"cache", "acc"}
    assert {"read_state", "coreml_update_state", "slice_update"} <= set(prog.op_counts)
    reference = KVCache().eval()
    states = prog.new_states()
    xs = _steps()
    for step, x in enumerate(xs, start=1):
        pos = np.array([step], np.int32)
        out = prog.run({"x": x, "pos": pos}, states=states, precision=precision, strict=True)
        with torch.no_grad():
            want_sum, want_acc = reference(torch.from_numpy(x), torch.from_numpy(pos))
        got_sum, got_acc = (out[o.name] for o in prog.outputs)
        assert rel_error(got_sum, want_sum.numpy()) <= tol
        assert rel_error(got_acc, want_acc.numpy()) <= tol
        assert rel_error(out["cache"], reference.cache.numpy()) <= tol
        assert rel_error(out["acc"], reference.acc.numpy()) <= tol
        states = {s.name: out[s.name] for s in prog.states}
    # each step landed in its own cache row; the untouched rows stay zero
    for step, x in enumerate(xs, start=1):
        assert np.array_equal(states["cache"][:, :, step : step + 1], x)
    assert not np.any(states["cache"][:, :, [0, 3]])


def test_given_states_are_not_modified(stateful):
    prog = stateful
    states = prog.new_states()
    x = np.ones((1, 2, 1, 3), np.float32)
    out = prog.run({"x": x, "pos": np.array([0], np.int32)}, states=states)
    assert not np.any(states["cache"]) and not np.any(states["acc"])
    assert np.array_equal(out["acc"], np.full((1, 3), 2.0, np.float32))
    # omitted states start at zero, so the same call gives the same result
    again = prog.run({"x": x, "pos": np.array([0], np.int32)})
    assert np.array_equal(again["acc"], out["acc"])


def test_bad_state_is_rejected(stateful):
    prog = stateful
    feeds = {"x": np.ones((1, 2, 1, 3), np.float32), "pos": np.array([0], np.int32)}
    with pytest.raises(InputError, match="state 'cache' has shape"):
        prog.run(feeds, states={"cache": np.zeros((1, 2, 5, 3), np.float32)})
    with pytest.raises(InputError, match="unknown state 'kv'"):
        prog.run(feeds, states={"kv": np.zeros(CACHE_SHAPE, np.float32)})
