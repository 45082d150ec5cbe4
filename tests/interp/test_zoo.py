"""Every zoo model, converted by coremltools at iOS16 and iOS18, runs in the interpreter and matches PyTorch.

fp32: the model converted with ``compute_precision=FLOAT32`` run in fp32 mode must match PyTorch to
max-abs error / max |reference| <= 1e-4 and cosine >= 0.99999.
fp16: the model converted with fp16 compute precision run in fp16 emulation must stay within the per-model
tolerance written next to the zoo entry (tests/zoo.py), with its reasoning.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devicefit import interp
from tests.helpers import convert, cosine, rel_error
from tests.zoo import ZOO, ZooEntry, build

CASES = [pytest.param(e, t, id=f"{e.name}-{t}") for e in ZOO for t in e.targets]


def _reference(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    return [o.numpy() for o in outs]


def _run(entry: ZooEntry, target: str, precision: str):
    model, inputs = build(entry)
    mlmodel = convert(model, inputs, target=target, precision=precision, input_names=entry.input_names)
    prog = interp.load(mlmodel)
    feeds = {n: t.numpy() for n, t in zip(entry.input_names, inputs)}
    out = prog.run(feeds, precision=precision, strict=True)
    return prog, [out[o.name] for o in prog.outputs], _reference(model, inputs)


@pytest.mark.parametrize(("entry", "target"), CASES)
def test_fp32_matches_pytorch(entry: ZooEntry, target: str):
    prog, actual, expected = _run(entry, target, "fp32")
    expected_ops = set(entry.ops) | (set(entry.ops18) if target == "iOS18" else set())
    assert expected_ops <= set(prog.op_counts), f"conversion lacks {expected_ops - set(prog.op_counts)}"
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        if e.dtype.kind in "iu":
            np.testing.assert_array_equal(a, e)
            continue
        assert rel_error(a, e) <= 1e-4
        assert cosine(a, e) >= 0.99999


@pytest.mark.parametrize(("entry", "target"), CASES)
def test_fp16_emulation_within_model_tolerance(entry: ZooEntry, target: str):
    _, actual, expected = _run(entry, target, "fp16")
    floats = [(a, e) for a, e in zip(actual, expected) if e.dtype.kind == "f"]
    assert floats
    for a, e in floats:
        assert a.dtype == np.float16, "fp16-typed outputs come back as float16"
        assert np.isfinite(a).all()
        assert rel_error(a, e) <= entry.fp16_rel, entry.why
        assert cosine(a, e) >= entry.fp16_cos, entry.why
    # integer outputs (top-k indices, argmax): the token chosen under fp16 must be (near-)best under fp32
    ints = [(a, e) for a, e in zip(actual, expected) if e.dtype.kind in "iu"]
    if ints:
        logits = expected[0][:, -1, :]
        for a, _ in ints:
            chosen = np.take_along_axis(logits, a.reshape(logits.shape[0], -1).astype(np.int64), axis=1)
            best = np.sort(logits, axis=1)[:, ::-1][:, : chosen.shape[1]]
            assert np.abs(chosen - best).max() <= entry.fp16_rel * np.abs(logits).max()
