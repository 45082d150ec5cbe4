"""Families the stateful wrapper was not written for: covered only where the wrapper provably reproduces them.

convert/lm_infer.py reads the decoder-layer layout off a LLaMA-named model and runs a probe sequence through the
wrapper against transformers' own forward; what the family computes beyond the wrapper is refused with the
measured difference, never converted wrong.
"""

from __future__ import annotations

import pytest
import torch

from devicefit.convert.lm_families import SUPPORTED_FAMILIES
from devicefit.convert.lm_infer import PROBE_RTOL, layout_of, verified_wiring
from devicefit.convert.lm_wrapper import causal_mask, lm_shape, stateful_wrapper
from devicefit.errors import InputError
from tests.lm.families import INFERRED, VOCAB, tiny_lm


def _llama(model_type: str, seed: int = 0):  # type: ignore[no-untyped-def]
    """A tiny LLaMA whose config says another family (as a fine-tune or a new release's class would)."""
    model = tiny_lm("llama", seed)
    model.config.model_type = model_type
    return model


def _prefill_then_decode(model, wrapper, total: int = 12, prompt: int = 7) -> float:  # type: ignore[no-untyped-def]
    ids = torch.randint(0, VOCAB, (1, total), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = model(ids).logits
        parts = [wrapper(ids[:, :prompt], causal_mask(prompt, prompt))]
        parts += [wrapper(ids[:, p : p + 1], causal_mask(1, p + 1)) for p in range(prompt, total)]
    return float((torch.cat(parts, dim=1) - expected).abs().max())


@pytest.mark.parametrize("family", INFERRED)
def test_inferred_families_are_verified_not_listed(family: str) -> None:
    model = tiny_lm(family)
    assert model.config.model_type not in SUPPORTED_FAMILIES
    shape = lm_shape(model)
    assert shape.verified is not None and shape.verified <= PROBE_RTOL


def test_a_renamed_llama_is_covered_and_exact() -> None:
    model = _llama("llama_finetune")
    assert layout_of(model) == ("sequential", ("input_layernorm", None, "post_attention_layernorm", None))
    shape = lm_shape(model)
    assert (shape.layout, shape.rotation, shape.family) == ("sequential", "half", "llama_finetune")
    assert _prefill_then_decode(model, stateful_wrapper(model, max_context=16)) < 1e-4


def test_a_family_computing_more_than_the_wrapper_is_refused_with_the_difference() -> None:
    # a family whose attention forward does more than its projections and the softmax (here: scales the first
    # layer's output), as Helium's rotary pairing did before the wrapper learned it:
    # the names are LLaMA's, the math is not
    model = _llama("scaled_llama")
    original = model.model.layers[0].self_attn.forward

    def doubled(*args, **kwargs):  # type: ignore[no-untyped-def]
        out, weights = original(*args, **kwargs)
        return out * 2.0, weights

    model.model.layers[0].self_attn.forward = doubled
    with pytest.raises(InputError) as info:
        lm_shape(model)
    message = str(info.value)
    assert "scaled_llama models are not covered" in message
    assert "does not reproduce its logits" in message and "half rotary pairing" in message
    assert "--task default" in message and "\n" not in message


def test_math_inside_the_modules_the_wrapper_calls_is_reproduced() -> None:
    # q / k / v clipped by hooks on the projections: the wrapper calls those modules, so it computes the same
    model = _llama("clipped_llama")
    for layer in model.model.layers:
        for name in ("q_proj", "k_proj", "v_proj"):
            getattr(layer.self_attn, name).register_forward_hook(lambda _m, _i, out: out.clamp(-0.05, 0.05))
    assert lm_shape(model).verified is not None
    assert _prefill_then_decode(model, stateful_wrapper(model, max_context=16)) < 1e-4


def test_a_model_without_llama_names_is_refused_naming_what_is_missing() -> None:
    import transformers as tf

    # CTRL (transformer.w, transformer.h); MPT, the example here before, is now a classic family (lm_classic.py)
    model = tf.CTRLLMHeadModel(tf.CTRLConfig(n_embd=32, n_head=2, n_layer=1, vocab_size=50, dff=64)).eval()
    verdict = verified_wiring(model)
    assert isinstance(verdict, str) and "model.embed_tokens" in verdict
    with pytest.raises(InputError, match=r"ctrl models are not covered .*no model\.embed_tokens"):
        lm_shape(model)


def test_a_norm_the_wrapper_would_not_call_is_refused_naming_the_norms() -> None:
    # a layer with one norm more than LLaMA's: the wrapper must not skip it silently
    model = _llama("extra_norm_llama")
    for layer in model.model.layers:
        layer.extra_layernorm = torch.nn.LayerNorm(model.config.hidden_size)
    with pytest.raises(
        InputError, match=r"norms \['extra_layernorm', 'input_layernorm', 'post_attention_layernorm'\]"
    ):
        lm_shape(model)


def test_the_verdict_is_kept_per_model(monkeypatch: pytest.MonkeyPatch) -> None:
    import devicefit.convert.lm_infer as infer

    model = _llama("counted_llama")
    calls = []
    real = infer._verify
    monkeypatch.setattr(infer, "_verify", lambda m: calls.append(m) or real(m))
    lm_shape(model)
    stateful_wrapper(model, max_context=8)
    assert len(calls) == 1


def test_rotary_tables_of_one_layer_type_only() -> None:
    # Gemma 3 / OLMo 3 compute a rotary table per layer type; a model whose layers are all of one type got one
    # table and no per-layer key (KeyError: None while tracing)
    model = tiny_lm("gemma3_text")
    model.config.layer_types = ["sliding_attention"] * len(model.model.layers)
    for layer in model.model.layers:
        layer.attention_type = "sliding_attention"
        layer.self_attn.sliding_window = model.config.sliding_window
        layer.self_attn.is_sliding = True
    assert _prefill_then_decode(model, stateful_wrapper(model, max_context=16)) < 1e-4


def test_experts_without_a_router_module_are_refused_naming_the_layer() -> None:
    # a mixture of experts that dispatches tokens in its own forward (nonzero / index_add loops): tracing would
    # freeze that dispatch to the probe's routing, so the wrapper refuses it before any probe
    model = _llama("loopy_moe")
    model.model.layers[1].mlp.experts = torch.nn.ModuleList([torch.nn.Linear(4, 4)])
    with pytest.raises(
        InputError, match=r"loopy_moe models are not covered .*model\.layers\.1\.mlp has no gate"
    ):
        lm_shape(model)


def test_layers_with_different_norms_are_refused_naming_the_layer() -> None:
    model = _llama("uneven_llama")
    model.model.layers[1].extra_layernorm = torch.nn.LayerNorm(model.config.hidden_size)
    with pytest.raises(
        InputError, match=r"model\.layers\.1 has norms \['extra_layernorm', 'input_layernorm'"
    ):
        lm_shape(model)


def test_afmoe_output_gate_expert_bias_and_mup_each_matter() -> None:
    """AFMoE is covered since the wrapper gates the heads' outputs (``gate_proj``), passes the block's
    ``expert_bias`` to its router and scales embeddings by muP: each dropped, the wrapper leaves transformers."""
    model = tiny_lm("afmoe")
    assert lm_shape(model).verified is not None
    assert _prefill_then_decode(model, stateful_wrapper(model, max_context=16)) < 1e-4
    unscaled = stateful_wrapper(model, max_context=16)
    unscaled.embedding_multiplier = 1.0
    assert _prefill_then_decode(model, unscaled) > 1e-2
    ids = torch.randint(0, VOCAB, (1, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        block = model.model.layers[1].mlp
        biased = model(ids).logits
        bias = block.expert_bias.clone()
        block.expert_bias.zero_()
        assert not torch.allclose(model(ids).logits, biased, atol=1e-2)  # the bias changes the routing
        block.expert_bias.copy_(bias)
        ungated = stateful_wrapper(model, max_context=16)
        for layer in model.model.layers:
            del (
                layer.self_attn.gate_proj
            )  # transformers' forward cannot run now: compared with its logits above
        assert not torch.allclose(ungated(ids, causal_mask(12, 12)), biased, atol=1e-2)
