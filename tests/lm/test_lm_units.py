"""LM pieces that need no conversion: budgets, weight groups, memory arithmetic, prompts, gates, detection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from devicefit.analyze.catalog import load_catalog
from devicefit.analyze.kv_cache import lm_memory, size_ladder
from devicefit.check.lm import LMText, is_lm_source
from devicefit.cli.lm import parse_lm_gates
from devicefit.compress.lm import group_of, parse_lm_budget
from devicefit.convert.lm_wrapper import lm_shape
from devicefit.errors import InputError
from tests.lm.families import tiny_lm


def test_lm_budgets_parse_and_judge() -> None:
    rel = parse_lm_budget("perplexity<=+3%")
    assert (rel.metric, rel.value, rel.relative) == ("perplexity", 0.03, True)
    assert rel.met(10.29, 10.0, None) and not rel.met(10.31, 10.0, None)
    assert not rel.met(float("nan"), 10.0, None) and not rel.met(None, 10.0, None)
    assert parse_lm_budget("perplexity<=12.5").met(12.5, None, None)
    tokens = parse_lm_budget("tokens>=0.95")
    assert tokens.met(None, None, 0.95) and not tokens.met(None, None, 0.9)
    for bad in ("perplexity>=3%", "tokens>=1.5", "perplexity<=+3", "accuracy>=0.9"):
        with pytest.raises(InputError):
            parse_lm_budget(bad)


def test_weight_groups_follow_pytorch_names_and_spare_rotary_tables() -> None:
    assert group_of("hf_model_embed_tokens_weight_to_fp16") == "embeddings"
    assert group_of("hf_lm_head_weight_to_fp16") == "lm_head"
    assert group_of("hf_model_layers_1_self_attn_k_proj_weight_to_fp16") == "attention"
    assert group_of("hf_model_layers_0_mlp_down_proj_weight") == "mlp"
    assert group_of("rope_cos_to_fp16") is None
    assert group_of("hf_model_layers_0_input_layernorm_weight") is None
    # the classic families' names (GPT-2, GPT-NeoX, OPT, BLOOM); their position tables are kept
    assert group_of("hf_transformer_wte_weight") == "embeddings"
    assert group_of("hf_transformer_h_0_attn_c_attn_weight") == "attention"
    assert group_of("hf_transformer_h_1_mlp_c_fc_weight") == "mlp"
    assert group_of("hf_gpt_neox_embed_in_weight") == "embeddings"
    assert group_of("hf_gpt_neox_layers_0_attention_query_key_value_weight") == "attention"
    assert group_of("hf_embed_out_weight") == "lm_head"
    assert group_of("hf_model_decoder_layers_0_fc1_weight") == "mlp"
    assert group_of("hf_transformer_word_embeddings_weight") == "embeddings"
    assert group_of("hf_transformer_h_0_self_attention_dense_weight") == "attention"
    assert group_of("hf_transformer_wpe_weight") is None
    assert group_of("hf_model_decoder_embed_positions_weight") is None
    # MPT: its MLP is `ffn` (left at fp16 by every plan before), its norms norm_1 / norm_2 / norm_f; CodeGen
    assert group_of("hf_transformer_blocks_0_ffn_up_proj_weight") == "mlp"
    assert group_of("hf_transformer_blocks_1_attn_Wqkv_weight") == "attention"
    assert group_of("hf_transformer_blocks_0_norm_1_weight") is None
    assert group_of("hf_transformer_h_0_attn_qkv_proj_weight") == "attention"
    # Llama 4: dense MLPs and experts under feed_forward
    assert group_of("hf_model_layers_1_feed_forward_experts_gate_up_proj") == "mlp"
    assert group_of("hf_model_layers_0_feed_forward_down_proj_weight") == "mlp"


def test_kv_cache_memory_and_decode_bound() -> None:
    shape = lm_shape(tiny_lm("llama"))  # 2 layers, 2 kv heads, head_dim 16
    devices = [d for d in load_catalog() if d.mem_bandwidth_gbps][:1] + [
        d for d in load_catalog() if not d.mem_bandwidth_gbps
    ][:1]
    mem = lm_memory(
        shape, 100, weight_bytes=1_000_000, parameters=500_000, intermediate_size=128, devices=devices
    )
    assert (
        mem.kv_cache_per_layer_bytes == 2 * 2 * 100 * 16 * 2
    )  # keys+values, kv heads, context, head_dim, fp16
    assert mem.kv_cache_bytes == 2 * mem.kv_cache_per_layer_bytes
    assert mem.bytes_per_token == 1_000_000 + mem.kv_cache_bytes
    fast, unknown = mem.devices
    assert fast.tokens_per_s_bound == pytest.approx(fast.bandwidth_gbps * 1e9 / mem.bytes_per_token)
    assert unknown.tokens_per_s_bound is None and mem.partial
    assert mem.prefill_activation_bytes > mem.decode_activation_bytes
    ladder = {r.name: r.weight_bytes for r in size_ladder(1000)}
    assert ladder["fp16"] == 2000 and ladder["int4-block32"] == 562 and ladder["palettize-3bit"] == 375
    json.dumps(mem.to_json())


def test_prompts_from_file_with_and_without_tokenizer(tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("1 2 3\n\n4\n")
    raw = LMText.for_model(None, vocab_size=10)
    assert [p.tolist() for p in raw.prompts(ids, None)] == [[1, 2, 3], [4]]
    ids.write_text("hello\n")
    with pytest.raises(InputError, match="no tokenizer; write prompts as space-separated token ids"):
        raw.prompts(ids, None)
    ids.write_text("1 99\n")
    with pytest.raises(InputError, match=r"outside 0\.\.9"):
        raw.prompts(ids, None)
    (tmp_path / "chars.json").write_text(json.dumps(list("abc ")))
    chars = LMText.for_model(tmp_path, vocab_size=4)
    ids.write_text("cab a\n")
    assert chars.prompts(ids, None)[0].tolist() == [2, 0, 1, 3, 0]
    assert chars.decode is not None and chars.decode([2, 0]) == "ca"
    default = raw.prompts(None, None)
    assert len(default) == 3 and all(isinstance(p, np.ndarray) for p in default)


def test_lm_gates_and_task_detection(tmp_path: Path) -> None:
    (gate,) = parse_lm_gates(["lm.fp32.token_agreement<1"])
    assert (gate.key, gate.op, gate.value) == ("lm.fp32.token_agreement", "<", 1.0)
    with pytest.raises(InputError, match=r"lm\.\* keys"):
        parse_lm_gates(["fp16.top1_agreement<0.99"])
    assert not is_lm_source(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    assert not is_lm_source(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    assert is_lm_source(tmp_path)


def test_check_refuses_prompts_past_the_context_before_converting() -> None:
    from devicefit.check.lm import LMCheckOptions, run_lm_check

    options = LMCheckOptions(model=lambda: tiny_lm("llama"), max_context=16, steps=20)
    with pytest.raises(InputError, match="exceeds --max-context 16"):
        run_lm_check(options)


def test_mlp_width_is_read_under_each_familys_config_name() -> None:
    """The activation estimate used 4 x hidden for OPT (ffn_dim) and GPT-2 / GPT-J (n_inner)."""
    from types import SimpleNamespace

    import transformers as tf

    from devicefit.check.lm import _intermediate

    assert _intermediate(tiny_lm("llama")) == 128
    assert _intermediate(SimpleNamespace(config=tf.OPTConfig(hidden_size=64, ffn_dim=96))) == 96
    assert _intermediate(SimpleNamespace(config=tf.GPT2Config(n_embd=64, n_inner=96))) == 96
    assert _intermediate(SimpleNamespace(config=tf.GPT2Config(n_embd=64))) == 256  # n_inner None: 4 x hidden


@pytest.mark.parametrize(
    ("family", "mlp"),
    [
        ("llama", 2 * 128),  # gate + up
        # dense layer: gate + up of intermediate_size_mlp (128); MoE layer: 4 experts x (gate + up of 32), every
        # expert on every token, + the shared expert's gate + up (32): the widest is the MoE layer
        ("llama4_text", max(2 * 128, 4 * 2 * 32 + 2 * 32)),
        ("mixtral", 4 * 2 * 128),  # 4 experts computed densely
        ("lfm2", 2 * 96),  # w1 + w3, LFM2's width rounded from 2 / 3 x 128 to a multiple of 32
        ("lfm2_moe", max(2 * 128, 4 * 2 * 32)),  # a dense first layer (w1 + w3), then 4 experts of 32
    ],
)
def test_memory_counts_each_layers_mlp_and_every_expert(family: str, mlp: int) -> None:
    """The activation estimate read one config width for every layer: Llama 4's experts' intermediate_size for
    its wider dense layers too, and one expert's width where the conversion runs all of them on every token."""
    from devicefit.check.lm import _memory

    model = tiny_lm(family)
    shape = lm_shape(model)
    mem = _memory(model, shape, 100, 1000, [])
    hidden_elems = 4 * shape.hidden_size
    assert (
        mem.decode_activation_bytes == (shape.num_heads * 100 + mlp + hidden_elems) * 2 + shape.vocab_size * 4
    )
    prefill = (shape.num_heads * 100 * 100 + 100 * mlp + 100 * hidden_elems) * 2 + 100 * shape.vocab_size * 4
    assert mem.prefill_activation_bytes == prefill
