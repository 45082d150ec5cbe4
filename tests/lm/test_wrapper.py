"""The stateful wrapper computes what the transformers model computes, prompt then token by token."""

from __future__ import annotations

import pytest
import torch

from devicefit.convert.lm_wrapper import StatefulCausalLM, causal_mask, lm_shape, stateful_wrapper
from devicefit.errors import InputError
from tests.lm.families import ALL_FAMILIES, VOCAB, tiny_lm


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_wrapper_matches_transformers_prefill_then_decode(family: str) -> None:
    # 14 positions: past the sliding window (6) of the gemma2 / gemma3 configs, so the window is exercised
    model = tiny_lm(family)
    ids = torch.randint(0, VOCAB, (1, 14), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(ids).logits
        wrapper = stateful_wrapper(model, max_context=16)
        parts = [wrapper(ids[:, :8], causal_mask(8, 8))]
        for pos in range(8, 14):
            parts.append(wrapper(ids[:, pos : pos + 1], causal_mask(1, pos + 1)))
    got = torch.cat(parts, dim=1)
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), (got - expected).abs().max()
    # the cache holds exactly the 14 positions written; the rest stays zero
    assert wrapper.k_cache[:, :, :, 14:].abs().max() == 0
    assert wrapper.k_cache[:, :, :, :14].abs().max() > 0


def test_sliding_window_beyond_the_window_matches_transformers() -> None:
    import transformers as tf

    torch.manual_seed(0)
    config = tf.MistralConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, sliding_window=4, initializer_range=0.2,
    )  # fmt: skip
    model = tf.MistralForCausalLM(config).eval()
    ids = torch.randint(0, VOCAB, (1, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(ids).logits
        wrapper = StatefulCausalLM(model, max_context=12)
        got = torch.cat([wrapper(ids[:, :5], causal_mask(5, 5))] + [
            wrapper(ids[:, p : p + 1], causal_mask(1, p + 1)) for p in range(5, 12)
        ], dim=1)  # fmt: skip
        full = StatefulCausalLM(model, max_context=12)
        full.windows = [None, None]  # the same model attending to everything: the window must matter
        ignored = full(ids, causal_mask(12, 12))
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), (got - expected).abs().max()
    assert not torch.allclose(ignored[:, 5:], expected[:, 5:], atol=1e-2)


def test_long_rope_past_the_original_context_is_refused() -> None:
    model = tiny_lm("phi3_longrope")  # original context 64
    StatefulCausalLM(model, max_context=64)
    with pytest.raises(InputError, match=r"exceeds this long-rope model's original context \(64\).*<= 64"):
        StatefulCausalLM(model, max_context=65)


def test_shape_reads_gqa_partial_rotary_and_sliding_window() -> None:
    assert lm_shape(tiny_lm("llama")).num_kv_heads == 2
    phi = lm_shape(tiny_lm("phi"))
    assert (phi.layout, phi.rotary_dim, phi.head_dim) == ("parallel", 8, 16)
    assert lm_shape(tiny_lm("mistral")).sliding_window == 4096
    assert lm_shape(tiny_lm("qwen2")).sliding_window is None  # use_sliding_window is off by default


def _config_only(model_type: str) -> object:
    """A stand-in with only a config naming ``model_type``: families refused by name are refused before any
    module is read."""
    return type("M", (), {"config": type("C", (), {"model_type": model_type})()})()


@pytest.mark.parametrize(
    ("family", "reason"),
    [
        ("qwen3_next", r"a hybrid: Gated DeltaNet .*a recurrent state"),
        ("jamba", r"a hybrid: Mamba layers .*an SSM and a convolution state"),
        ("gemma3n_text", r"AltUp.*LAuReL.*per-layer embeddings"),
        ("gemma3", r"load its text model"),
        ("llama4", r"\(Llama4ForCausalLM, model_type llama4_text\)"),
    ],
)
def test_uncovered_family_says_why(family: str, reason: str) -> None:
    with pytest.raises(
        InputError,
        match=rf"{family} models are not covered .*{reason}.*--task default` checks the plain forward",
    ):
        lm_shape(_config_only(family))


@pytest.mark.parametrize(
    ("family", "table"),
    [
        ("gpt2", "transformer.wpe"),
        ("gpt_bigcode", "transformer.wpe"),
        ("opt", "model.decoder.embed_positions"),
        ("gptj", "transformer.rotary_emb"),
        ("codegen", "transformer.rotary_emb"),
        ("mpt_clip", "config.max_seq_len"),
    ],
)
def test_positions_past_the_learned_table_are_refused(family: str, table: str) -> None:
    """A cache longer than the position table would index past it (or wrap on a device): refused, one line."""
    model = tiny_lm(family)  # 256 positions
    stateful_wrapper(model, max_context=256)
    with pytest.raises(InputError, match=rf"--max-context 257 exceeds the 256 positions .*\({table}\); use"):
        stateful_wrapper(model, max_context=257)


@pytest.mark.parametrize("family", ["bloom", "falcon_alibi"])
@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_alibi_biases_are_exact_and_matter(family: str, implementation: str) -> None:
    """ALiBi over the static cache equals transformers (Falcon's eager path adds the bias twice, sdpa once;
    BLOOM has one path); without the bias the logits differ, so the test can fail."""
    model = tiny_lm(family)
    if family == "bloom" and implementation == "sdpa":
        pytest.skip("BLOOM has no sdpa attention")
    model.set_attn_implementation(implementation)
    ids = torch.randint(0, VOCAB, (1, 14), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = model(ids).logits
        wrapper = stateful_wrapper(model, max_context=16)
        got = torch.cat([wrapper(ids[:, :9], causal_mask(9, 9))] + [
            wrapper(ids[:, p : p + 1], causal_mask(1, p + 1)) for p in range(9, 14)
        ], dim=1)  # fmt: skip
        unbiased = stateful_wrapper(model, max_context=16)
        # BLOOM's slopes apply relative to the newest key (fp16-exact nearby); Falcon's bfloat16-rounded table
        getattr(unbiased, "alibi_slopes" if family == "bloom" else "alibi").zero_()
        ignored = unbiased(ids, causal_mask(14, 14))
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), (got - expected).abs().max()
    assert not torch.allclose(ignored, expected, atol=1e-2)


def test_causal_mask_blocks_future_slots_only() -> None:
    mask = causal_mask(2, 5)[0, 0]
    assert mask.shape == (2, 5)
    assert (mask[0, :4] == 0).all() and mask[0, 4] < -1e3
    assert (mask[1] == 0).all()


def _window_mask(wrapper: StatefulCausalLM, past: int, end: int, window: int) -> torch.Tensor:
    """Which keys the wrapper's sliding-window rule masks for queries at slots [past, end)."""
    rows = wrapper.positions[past:end][:, None]
    cols = wrapper.positions[:end][None, :]
    return rows - cols >= window


@pytest.mark.parametrize("context", [2100, 5000])
def test_window_and_chunk_positions_stay_exact_in_fp16(context: int) -> None:
    """An fp16 package stores float constants in fp16, which holds integers exactly up to 2048 only: a float
    ``positions`` table read slot 2049 as 2048, so past 2048 the window let one key too many through (and chunk
    numbers drifted the same way). ``Module.half()`` casts the float buffers as fp16 compute casts constants."""
    model = tiny_lm("gemma2")  # sliding window 6
    exact = _window_mask(StatefulCausalLM(model, max_context=context), context - 40, context, 6)
    half = StatefulCausalLM(model, max_context=context).half()
    assert torch.equal(_window_mask(half, context - 40, context, 6), exact)
    assert exact[:, -1].sum() == 0 and exact[-1].sum() == context - 6  # the rule itself: 6 keys in view
    llama4 = StatefulCausalLM(tiny_lm("llama4_text"), max_context=context).half()  # chunks of 4
    assert torch.equal(llama4.chunk_index[-9:].long(), torch.arange(context - 9, context) // 4)
