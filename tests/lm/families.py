"""Tiny random-init causal LMs of every covered family, built in code (nothing is downloaded).

``initializer_range=0.2`` (instead of 0.02) gives peaked next-token distributions, so that greedy tokens are
decided by clear margins and a flipped token means a real difference, not a near-tie.
"""

from __future__ import annotations

from typing import Any

# the families of the first release: the slow 64-step generation test runs over these
FAMILIES = ("llama", "qwen2", "mistral", "phi", "gemma")
# the classic GPT-style families (convert/lm_classic.py), with their variants
CLASSIC = (
    "gpt2", "gpt_bigcode", "gpt_bigcode_mha", "gpt_neox", "gpt_neox_sequential", "opt", "opt_350m", "gptj", "falcon", "falcon_mq", "falcon_alibi",
    "bloom", "codegen", "mpt", "mpt_clip",
)  # fmt: skip
# families the wrapper was not written for (not in SUPPORTED_FAMILIES), covered because their modules carry
# LLaMA's names and the wrapper reproduced their logits (convert/lm_infer.py)
INFERRED = (
    "olmo", "olmo3", "olmoe", "nemotron", "seed_oss", "arcee", "exaone4", "phimoe", "helium", "ernie4_5", "glm",
    "cohere2", "glm4", "hunyuan_v1_dense", "gpt_oss",
    "apertus", "vaultgemma", "ministral", "glm4_moe", "exaone_moe", "minimax_m2", "dots1", "afmoe",
)  # fmt: skip
# latent attention (MLA) with DeepSeek's routers: written for (convert/lm_mla.py)
LATENT = ("deepseek_v3", "deepseek_v3_plain", "deepseek_v2")
# attention layers between short-convolution layers with a convolution state (convert/lm_hybrid.py)
HYBRID = ("lfm2", "lfm2_moe")
# every family the wrapper covers: the fast prefill + decode equivalence test runs over all of them
ALL_FAMILIES = (
    *FAMILIES, *HYBRID, "qwen3", "gemma2", "gemma3_text", "phi3", "phi3_longrope", "olmo2", "stablelm", "granite",
    "smollm3", "cohere", "starcoder2", "mixtral", "qwen2_moe", "qwen3_moe", "llama4_text", *LATENT, *CLASSIC,
    *INFERRED,
)  # fmt: skip
VOCAB = 96

# family -> (config class, model class, extra config): the differences each family brings, switched on
_EXTRA: dict[str, tuple[str, str, dict[str, Any]]] = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", {"num_key_value_heads": 2}),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {"num_key_value_heads": 2}),
    "mistral": ("MistralConfig", "MistralForCausalLM", {"num_key_value_heads": 2, "sliding_window": 4096}),
    "phi": ("PhiConfig", "PhiForCausalLM", {"partial_rotary_factor": 0.5}),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", {"num_key_value_heads": 1, "head_dim": 16}),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {"num_key_value_heads": 2, "head_dim": 16}),
    # soft-capping on, alternating sliding (window 6) and global layers
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", {
        "num_key_value_heads": 2, "head_dim": 16, "sliding_window": 6, "attn_logit_softcapping": 5.0,
        "final_logit_softcapping": 3.0, "query_pre_attn_scalar": 16,
    }),
    # local layers with their own rope base, q/k norm, window 6; 3 layers: 2 local + 1 global
    "gemma3_text": ("Gemma3TextConfig", "Gemma3ForCausalLM", {
        "num_key_value_heads": 2, "head_dim": 16, "sliding_window": 6, "num_hidden_layers": 3,
        "layer_types": ["sliding_attention", "sliding_attention", "full_attention"],
    }),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", {"num_key_value_heads": 2, "pad_token_id": 0}),
    "phi3_longrope": ("Phi3Config", "Phi3ForCausalLM", {
        "num_key_value_heads": 2, "pad_token_id": 0, "original_max_position_embeddings": 64,
        "rope_parameters": {"rope_type": "longrope", "rope_theta": 10000.0, "partial_rotary_factor": 0.75,
                            "short_factor": [1.0 + 0.1 * i for i in range(6)],
                            "long_factor": [2.0 + 0.5 * i for i in range(6)]},
    }),
    "olmo2": ("Olmo2Config", "Olmo2ForCausalLM", {"num_key_value_heads": 2}),
    "stablelm": ("StableLmConfig", "StableLmForCausalLM", {
        "num_key_value_heads": 2, "qk_layernorm": True, "use_qkv_bias": True,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5},
    }),
    "granite": ("GraniteConfig", "GraniteForCausalLM", {
        "num_key_value_heads": 2, "embedding_multiplier": 3.0, "residual_multiplier": 0.5,
        "attention_multiplier": 0.1, "logits_scaling": 2.0,
    }),
    "smollm3": ("SmolLM3Config", "SmolLM3ForCausalLM", {
        "num_key_value_heads": 2, "no_rope_layers": [1, 0], "pad_token_id": 0,
    }),
    "cohere": ("CohereConfig", "CohereForCausalLM", {
        "num_key_value_heads": 2, "use_qk_norm": True, "logit_scale": 0.5, "pad_token_id": 0,
    }),
    "starcoder2": ("Starcoder2Config", "Starcoder2ForCausalLM", {"num_key_value_heads": 2, "sliding_window": None}),
    "mixtral": ("MixtralConfig", "MixtralForCausalLM", {
        "num_key_value_heads": 2, "num_local_experts": 4, "num_experts_per_tok": 2, "sliding_window": None,
    }),
    "qwen2_moe": ("Qwen2MoeConfig", "Qwen2MoeForCausalLM", {
        "num_key_value_heads": 2, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
        "shared_expert_intermediate_size": 64,
    }),
    "qwen3_moe": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM", {
        "num_key_value_heads": 2, "head_dim": 16, "num_experts": 4, "num_experts_per_tok": 2,
        "moe_intermediate_size": 32, "norm_topk_prob": True,
    }),
    # Llama 4 (text): layer 0 rotary (complex pairs 2i / 2i + 1) with L2 q/k norm and chunked local attention
    # (chunks of 4), a dense MLP; layer 1 NoPE, global, temperature tuning from position 3 on (floor_scale 4), a top-1
    # sigmoid mixture of 4 experts (router scores scale the experts' inputs) beside a shared expert
    "llama4_text": ("Llama4TextConfig", "Llama4ForCausalLM", {
        "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 32, "intermediate_size_mlp": 128,
        "num_local_experts": 4, "num_experts_per_tok": 1, "interleave_moe_layer_step": 2, "no_rope_layers": [1, 0],
        "attention_chunk_size": 4, "floor_scale": 4, "attn_scale": 0.5, "pad_token_id": 0, "bos_token_id": 0,
        "eos_token_id": 0,
    }),
    # learned positions (n_positions), fused Conv1D c_attn, gelu_new, tied lm_head; per-layer 1 / (i + 1) scaling
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", {
        "scale_attn_by_inverse_layer_idx": True, "n_inner": 128, "bos_token_id": 0, "eos_token_id": 0,
    }),
    # StarCoder / SantaCoder: GPT-2's layout with a Linear c_attn, multi-query ([q | k | v] of one kv head) or per
    # head ([q_h | k_h | v_h])
    "gpt_bigcode": ("GPTBigCodeConfig", "GPTBigCodeForCausalLM", {
        "multi_query": True, "n_inner": 128, "bos_token_id": 0, "eos_token_id": 0,
    }),
    "gpt_bigcode_mha": ("GPTBigCodeConfig", "GPTBigCodeForCausalLM", {
        "multi_query": False, "n_inner": 128, "bos_token_id": 0, "eos_token_id": 0,
    }),
    # fused per-head query_key_value, partial rotary, parallel residual (Pythia); and the sequential form
    "gpt_neox": ("GPTNeoXConfig", "GPTNeoXForCausalLM", {"rotary_pct": 0.25, "use_parallel_residual": True}),
    "gpt_neox_sequential": ("GPTNeoXConfig", "GPTNeoXForCausalLM", {
        "rotary_pct": 0.5, "use_parallel_residual": False, "attention_bias": False,
    }),
    # learned positions with OPT's offset of 2, pre-norm; OPT-350m: post-norm and project_in / project_out
    "opt": ("OPTConfig", "OPTForCausalLM", {"ffn_dim": 128, "pad_token_id": 1}),
    "opt_350m": ("OPTConfig", "OPTForCausalLM", {
        "ffn_dim": 128, "pad_token_id": 1, "do_layer_norm_before": False, "word_embed_proj_dim": 32,
    }),
    # interleaved rotary on the first rotary_dim dims, parallel attention + MLP from one LayerNorm
    "gptj": ("GPTJConfig", "GPTJForCausalLM", {"rotary_dim": 8, "n_inner": 128}),
    # new decoder architecture: fused grouped q/k/v (2 kv heads), two norms in parallel (Falcon-40B style)
    "falcon": ("FalconConfig", "FalconForCausalLM", {
        "new_decoder_architecture": True, "num_kv_heads": 2, "bias": True,
    }),
    # multi-query (one kv head), parallel attention (Falcon-7B style)
    "falcon_mq": ("FalconConfig", "FalconForCausalLM", {"multi_query": True, "parallel_attn": True}),
    # ALiBi, one q/k/v per head, sequential layers (Falcon-RW style)
    "falcon_alibi": ("FalconConfig", "FalconForCausalLM", {
        "alibi": True, "multi_query": False, "parallel_attn": False, "bias": True,
    }),
    # ALiBi with 6 heads (not a power of two: the interleaved extra slopes), embedding LayerNorm, fused qkv
    "bloom": ("BloomConfig", "BloomForCausalLM", {
        "hidden_size": 96, "num_attention_heads": 6, "apply_residual_connection_post_layernorm": True,
    }),
    # CodeGen: GPT-J's layer with q / v / k fused in 4 model-parallel groups, 8 of 16 dims rotated
    "codegen": ("CodeGenConfig", "CodeGenForCausalLM", {
        "rotary_dim": 8, "n_inner": 128, "bos_token_id": 0, "eos_token_id": 0,
    }),
    # MPT: ALiBi (its own slopes), fused Wqkv without biases, weight-only LayerNorms, tied lm_head; 6 heads (not a
    # power of two: the interleaved extra slopes); and the variant that clips q / k / v
    "mpt": ("MptConfig", "MptForCausalLM", {"hidden_size": 96, "num_attention_heads": 6, "max_seq_len": 256}),
    "mpt_clip": ("MptConfig", "MptForCausalLM", {"max_seq_len": 256, "attn_config": {"clip_qkv": 0.6}}),
    # inferred families (INFERRED): OLMo's norms without weights; OLMo 3's sliding-window layers (window 6); a
    # mixture of experts each in OLMoE and Phi-MoE; Nemotron's relu^2 MLP and partial rotary; EXAONE 4's post-norm
    "olmo": ("OlmoConfig", "OlmoForCausalLM", {"num_key_value_heads": 2, "pad_token_id": 0, "eos_token_id": 0}),
    "olmo3": ("Olmo3Config", "Olmo3ForCausalLM", {
        "num_key_value_heads": 2, "sliding_window": 6, "pad_token_id": 0, "eos_token_id": 0,
        "layer_types": ["sliding_attention", "full_attention"],
    }),
    "olmoe": ("OlmoeConfig", "OlmoeForCausalLM", {
        "num_key_value_heads": 2, "num_experts": 4, "num_experts_per_tok": 2, "pad_token_id": 0, "eos_token_id": 0,
    }),
    "nemotron": ("NemotronConfig", "NemotronForCausalLM", {
        "num_key_value_heads": 2, "head_dim": 16, "partial_rotary_factor": 0.5, "bos_token_id": 0, "eos_token_id": 0,
    }),
    "seed_oss": ("SeedOssConfig", "SeedOssForCausalLM", {"num_key_value_heads": 2, "head_dim": 16}),
    "arcee": ("ArceeConfig", "ArceeForCausalLM", {"num_key_value_heads": 2, "bos_token_id": 0, "eos_token_id": 0}),
    "exaone4": ("Exaone4Config", "Exaone4ForCausalLM", {"num_key_value_heads": 2, "head_dim": 16}),
    # rotary pairs 2i / 2i + 1 from the first half of LLaMA-layout tables; GLM's partial rotary (half the dims)
    "helium": ("HeliumConfig", "HeliumForCausalLM", {
        "num_key_value_heads": 2, "head_dim": 16, "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0,
    }),
    "ernie4_5": ("Ernie4_5Config", "Ernie4_5ForCausalLM", {"num_key_value_heads": 2, "head_dim": 16}),
    "glm": ("GlmConfig", "GlmForCausalLM", {"num_key_value_heads": 2, "head_dim": 16, "pad_token_id": 0}),
    # Cohere 2: rotary on the sliding-window layers only (window 6), the global layer NoPE; Cohere's logit_scale
    "cohere2": ("Cohere2Config", "Cohere2ForCausalLM", {
        "num_key_value_heads": 2, "sliding_window": 6, "layer_types": ["sliding_attention", "full_attention"],
        "logit_scale": 0.5, "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0,
    }),
    # GLM-4: sandwich layers under its own norm names, GLM's rotary
    "glm4": ("Glm4Config", "Glm4ForCausalLM", {"num_key_value_heads": 2, "head_dim": 16, "pad_token_id": 0}),
    # HunYuan: per-head q/k norm after the rotation (query_layernorm / key_layernorm)
    "hunyuan_v1_dense": ("HunYuanDenseV1Config", "HunYuanDenseV1ForCausalLM", {
        "num_key_value_heads": 2, "head_dim": 16, "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0,
    }),
    # gpt-oss: attention sinks, alternating sliding-window layers (window 6), YaRN rope from half-width tables,
    # experts with biases and its clamped swiglu, the router's own bias
    "gpt_oss": ("GptOssConfig", "GptOssForCausalLM", {
        "num_key_value_heads": 2, "head_dim": 16, "num_local_experts": 4, "num_experts_per_tok": 2,
        "sliding_window": 6, "layer_types": ["sliding_attention", "full_attention"], "pad_token_id": 0,
        "bos_token_id": 0, "eos_token_id": 0,
        "rope_parameters": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64,
                            "rope_theta": 150000.0, "beta_fast": 32.0, "beta_slow": 1.0},
    }),
    # norms under other names: Apertus (attention_ / feedforward_layernorm, xIELU MLP), VaultGemma (Gemma's
    # pre_feedforward_layernorm in LLaMA's sequential layout); Ministral: alternating sliding-window layers
    "apertus": ("ApertusConfig", "ApertusForCausalLM", {
        "num_key_value_heads": 2, "head_dim": 16, "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0,
    }),
    "vaultgemma": ("VaultGemmaConfig", "VaultGemmaForCausalLM", {"num_key_value_heads": 2, "head_dim": 16}),
    "ministral": ("MinistralConfig", "MinistralForCausalLM", {
        "num_key_value_heads": 2, "head_dim": 16, "sliding_window": 6,
        "layer_types": ["sliding_attention", "full_attention"],
    }),
    # mixtures of experts with always-on shared experts and sigmoid routers with a score-correction bias
    "glm4_moe": ("Glm4MoeConfig", "Glm4MoeForCausalLM", {
        "num_key_value_heads": 2, "head_dim": 16, "n_routed_experts": 4, "num_experts_per_tok": 2,
        "moe_intermediate_size": 32, "pad_token_id": 0,
    }),
    "exaone_moe": ("ExaoneMoeConfig", "ExaoneMoeForCausalLM", {
        "num_key_value_heads": 2, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
        "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0,
    }),
    # MiniMax-M2: q/k RMSNorm over the whole projection, partial rotary, a sigmoid router called with the block's
    # score-correction bias as an argument
    "minimax_m2": ("MiniMaxM2Config", "MiniMaxM2ForCausalLM", {
        "num_key_value_heads": 2, "head_dim": 16, "num_local_experts": 4, "num_experts_per_tok": 2,
        "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5},
    }),
    # DeepSeek-V3: latent attention (q through q_a_proj / q_a_layernorm / q_b_proj, value dims != key dims),
    # rotary pairs 2i / 2i + 1 (rope_interleave), YaRN with mscale in the softmax scale; a dense first layer, then
    # sigmoid routing with a score-correction bias, group-limited (the best of 2 groups of 4), renormalised and
    # scaled, beside a shared expert
    "deepseek_v3": ("DeepseekV3Config", "DeepseekV3ForCausalLM", {
        "q_lora_rank": 32, "kv_lora_rank": 32, "qk_rope_head_dim": 8, "qk_nope_head_dim": 32, "v_head_dim": 8,
        "n_routed_experts": 8, "num_experts_per_tok": 2, "n_group": 2, "topk_group": 1, "moe_intermediate_size": 32,
        "n_shared_experts": 1, "first_k_dense_replace": 1, "routed_scaling_factor": 2.5, "norm_topk_prob": True,
        "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0,
        "rope_parameters": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64,
                            "rope_theta": 10000.0, "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 1.0,
                            "mscale_all_dim": 1.0},
    }),
    # DeepSeek-V3 with a plain q_proj, LLaMA's rotary halves (rope_interleave off), no renormalisation
    "deepseek_v3_plain": ("DeepseekV3Config", "DeepseekV3ForCausalLM", {
        "q_lora_rank": None, "kv_lora_rank": 32, "qk_rope_head_dim": 8, "qk_nope_head_dim": 32, "v_head_dim": 8,
        "n_routed_experts": 8, "num_experts_per_tok": 2, "n_group": 2, "topk_group": 1, "moe_intermediate_size": 32,
        "n_shared_experts": 1, "first_k_dense_replace": 1, "routed_scaling_factor": 2.5, "norm_topk_prob": False,
        "rope_interleave": False, "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0,
    }),
    # DeepSeek-V2: the same attention, complex rotary; softmax routing, group-limited greedy, scaled
    "deepseek_v2": ("DeepseekV2Config", "DeepseekV2ForCausalLM", {
        "q_lora_rank": 32, "kv_lora_rank": 32, "qk_rope_head_dim": 8, "qk_nope_head_dim": 32, "v_head_dim": 8,
        "n_routed_experts": 8, "num_experts_per_tok": 2, "n_group": 2, "topk_group": 1, "moe_intermediate_size": 32,
        "n_shared_experts": 1, "first_k_dense_replace": 1, "routed_scaling_factor": 2.0,
        "topk_method": "group_limited_greedy", "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0,
    }),
    # dots.llm1: DeepSeek-V3's sigmoid, group-limited router and shared expert beside LLaMA-named attention
    "dots1": ("Dots1Config", "Dots1ForCausalLM", {
        "num_key_value_heads": 2, "head_dim": 16, "n_routed_experts": 8, "num_experts_per_tok": 2, "n_group": 2,
        "topk_group": 1, "moe_intermediate_size": 32, "n_shared_experts": 1, "first_k_dense_replace": 1,
        "pad_token_id": 0,
    }),
    # AFMoE: sandwich layers under its own norm names, q/k norm, rotary on the sliding-window layers only (window 6),
    # the heads' outputs gated by sigmoid(gate_proj(x)), muP-scaled embeddings; a dense first layer, then a sigmoid
    # router called with the block's expert_bias, renormalised and scaled by route_scale, beside a shared expert
    "afmoe": ("AfmoeConfig", "AfmoeForCausalLM", {
        "num_key_value_heads": 2, "head_dim": 16, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
        "num_shared_experts": 1, "num_dense_layers": 1, "sliding_window": 6, "global_attn_every_n_layers": 2,
        "mup_enabled": True, "route_scale": 2.0, "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0,
    }),
    # LFM2: conv, attention, conv (kernel 3: two steps of conv state per conv layer); q/k layernorm per head, the
    # final norm named embedding_norm, the MLP width rounded to block_multiple_of
    "lfm2": ("Lfm2Config", "Lfm2ForCausalLM", {
        "num_key_value_heads": 2, "num_hidden_layers": 3, "layer_types": ["conv", "full_attention", "conv"],
        "block_multiple_of": 32,
    }),
    # LFM2-MoE: LFM2's layers, a dense first layer, then 4 experts (top-2) behind a sigmoid router whose expert bias
    # (random here) picks them, renormalised and scaled
    "lfm2_moe": ("Lfm2MoeConfig", "Lfm2MoeForCausalLM", {
        "num_key_value_heads": 2, "num_hidden_layers": 3, "layer_types": ["conv", "full_attention", "conv"],
        "num_dense_layers": 1, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
        "routed_scaling_factor": 2.0,
    }),
    "phimoe": ("PhimoeConfig", "PhimoeForCausalLM", {
        "num_key_value_heads": 2, "num_local_experts": 4, "num_experts_per_tok": 2, "sliding_window": None,
    }),
}  # fmt: skip


def tiny_lm(family: str, seed: int = 0) -> Any:
    """A 2-layer causal LM of ``family`` (GQA where the family has it, partial rotary for Phi)."""
    import torch
    import transformers as tf

    if family not in _EXTRA:
        raise ValueError(family)
    config_name, model_name, extra = _EXTRA[family]
    torch.manual_seed(seed)
    common: dict[str, Any] = dict(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=256,
        initializer_range=0.2,
    )
    common.update(extra)
    model = getattr(tf, model_name)(getattr(tf, config_name)(**common)).eval()
    if family in _SCORE_BIASED:
        # the score-correction biases start at zero; trained ones are not, and they change which experts are picked
        with torch.no_grad():
            for name, tensor in (*model.named_buffers(), *model.named_parameters()):
                if name.endswith(("e_score_correction_bias", "expert_bias")):
                    tensor.normal_(0.0, 0.3)
    return model


# families whose routers' score-correction biases tiny_lm sets to random values (the routing must honour them)
_SCORE_BIASED = ("deepseek_v3", "deepseek_v3_plain", "minimax_m2", "dots1", "afmoe", "lfm2_moe")
