"""LFM2: attention layers between short-convolution layers, whose convolution state is a third Core ML state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from devicefit.compare.generation import check_generation
from devicefit.convert.stateful import convert_causal_lm
from devicefit.engines.lm_session import InterpLM, TorchLM
from devicefit.errors import InputError
from tests.lm.families import VOCAB, tiny_lm


@pytest.fixture(scope="module")
def lfm2_pkg(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    model = tiny_lm("lfm2")  # conv, attention, conv; kernel 3
    out = tmp_path_factory.mktemp("lfm2") / "lfm2.mlpackage"
    convert_causal_lm(model, out, max_context=24, precision="fp32")
    return model, out


def test_package_declares_the_conv_state_and_reproduces_transformers(lfm2_pkg: tuple[object, Path]) -> None:
    import devicefit.interp as interp

    model, pkg = lfm2_pkg
    for function in ("prefill", "decode"):
        states = {s.name: s.shape for s in interp.load(pkg, function=function).states}
        # the KV cache holds the one attention layer; the state the two conv layers' last 2 steps
        assert states == {
            "k_cache": (1, 1, 2, 24, 16),
            "v_cache": (1, 1, 2, 24, 16),
            "conv_state": (2, 1, 64, 2),
        }
    lm, ref = InterpLM(pkg), TorchLM(model, 24)
    prompt = np.array([3, 1, 4, 1, 5, 9, 2])
    np.testing.assert_allclose(lm.feed(prompt), ref.feed(prompt), atol=1e-4)
    for token in (7, 8, 11):  # decode reads the conv state prefill left: a dropped state changes these logits
        np.testing.assert_allclose(lm.feed(np.array([token])), ref.feed(np.array([token])), atol=1e-4)
    assert np.abs(lm.states["conv_state"]).max() > 0
    lm.reset()
    assert not np.abs(lm.states["conv_state"]).any()
    rng = np.random.default_rng(0)
    result = check_generation(TorchLM(model, 24), {"fp32": InterpLM(pkg)}, [rng.integers(0, VOCAB, 5)], 8)
    run = result.runs[0]
    assert run.token_agreement == 1.0 and run.first_diff_step is None and run.verdict == "pass"


def test_a_decode_step_is_replayed_in_pytorch_from_every_state(lfm2_pkg: tuple[object, Path]) -> None:
    """Localising a decode step replays it in PyTorch from the states the package read: without the conv state
    the replay's conv layers start from zeros and every module after them differs from the package."""
    from devicefit.check.lm_localize import _torch_calls

    model, pkg = lfm2_pkg
    lm = InterpLM(pkg)
    lm.feed(np.array([3, 1, 4, 1, 5]))
    step = lm.trace(np.array([9]))
    assert step.function == "decode" and np.abs(step.states["conv_state"]).max() > 0
    calls = _torch_calls(model, 24, step, round_cache_fp16=False)
    head = next(c for c in calls if c.path == "lm_head")
    np.testing.assert_allclose(
        head.output.reshape(-1), np.asarray(step.values["logits"]).reshape(-1), atol=1e-4
    )


def test_a_session_never_pads_a_prompt_into_the_conv_state(lfm2_pkg: tuple[object, Path]) -> None:
    """A package with enumerated prefill lengths and a conv state (not one devicefit writes, but one a session
    may be handed): a short prompt is fed token by token through decode instead of padded, and tracing it, which
    would pad, is refused in one line."""
    import dataclasses

    model, pkg = lfm2_pkg
    lm = InterpLM(pkg)
    lm._fns = dataclasses.replace(lm._fns, prefill_lengths=[8])
    prompt, ref = np.array([3, 1, 4, 1, 5]), TorchLM(model, 24)
    np.testing.assert_allclose(lm.feed(prompt), ref.feed(prompt), atol=1e-4)
    # the next token reads the conv state: padding left in it would move these logits
    np.testing.assert_allclose(lm.feed(np.array([7])), ref.feed(np.array([7])), atol=1e-4)
    lm.reset()
    with pytest.raises(
        InputError, match=r"padded to 8, and this package's conv_state state would keep the padding"
    ):
        lm.trace(prompt)


def test_enumerated_prefill_lengths_are_refused(tmp_path: Path) -> None:
    """Padding a prompt to an enumerated length would leave padding in the conv state (it has no positions)."""
    with pytest.raises(InputError, match=r"lfm2 keeps a convolution state .*convert without prefill lengths"):
        convert_causal_lm(tiny_lm("lfm2"), tmp_path / "p.mlpackage", max_context=16, prefill_lengths=[8])
    assert not (tmp_path / "p.mlpackage").exists()


def test_memory_counts_the_conv_state_and_attention_layers_only() -> None:
    from devicefit.analyze.kv_cache import lm_memory
    from devicefit.convert.lm_wrapper import lm_shape

    shape = lm_shape(tiny_lm("lfm2"))
    mem = lm_memory(shape, 100, weight_bytes=1000, parameters=500, intermediate_size=128, devices=[])
    per_layer = 2 * 2 * 100 * 16 * 2  # keys + values, kv heads, context, head dim, fp16
    conv = 2 * 64 * 2 * 2  # conv layers, channels, steps, fp16
    assert mem.kv_cache_per_layer_bytes == per_layer
    assert mem.kv_cache_bytes == per_layer * 1 + conv  # one attention layer of three


def test_the_pytorch_reference_prints_no_transformers_kernel_notice(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """transformers' LFM2 forward asks for `causal_conv1d` (a CUDA kernel package) once per process; `check`'s
    PyTorch reference keeps that notice, which says nothing about the model, off the user's terminal."""
    import transformers.utils.logging as tlog

    tlog.warning_once.cache_clear()  # the notice is once per process: other tests may have printed it
    TorchLM(tiny_lm("lfm2"), 8).feed(np.array([1, 2, 3]))
    assert "causal_conv1d" not in capfd.readouterr().err
