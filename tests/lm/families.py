"""Tiny random-init causal LMs of every covered family, built in code (nothing is downloaded).

``initializer_range=0.2`` (instead of 0.02) gives peaked next-token distributions, so that greedy tokens are
decided by clear margins and a flipped token means a real difference, not a near-tie.
"""

from __future__ import annotations

from typing import Any

FAMILIES = ("llama", "qwen2", "mistral", "phi", "gemma")
VOCAB = 96


def tiny_lm(family: str, seed: int = 0) -> Any:
    """A 2-layer causal LM of ``family`` (GQA where the family has it, partial rotary for Phi)."""
    import torch
    import transformers as tf

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
    if family == "llama":
        model = tf.LlamaForCausalLM(tf.LlamaConfig(num_key_value_heads=2, **common))
    elif family == "qwen2":
        model = tf.Qwen2ForCausalLM(tf.Qwen2Config(num_key_value_heads=2, **common))
    elif family == "mistral":
        model = tf.MistralForCausalLM(tf.MistralConfig(num_key_value_heads=2, sliding_window=4096, **common))
    elif family == "phi":
        model = tf.PhiForCausalLM(tf.PhiConfig(partial_rotary_factor=0.5, **common))
    elif family == "gemma":
        model = tf.GemmaForCausalLM(tf.GemmaConfig(num_key_value_heads=1, head_dim=16, **common))
    else:
        raise ValueError(family)
    return model.eval()
