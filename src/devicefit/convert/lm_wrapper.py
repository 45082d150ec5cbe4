"""A traceable causal-LM forward with an explicit static KV cache, built from a Hugging Face model's modules.

transformers' own forward builds masks with its masking utilities (``torch.diff`` and friends, data-dependent
early exits) and keeps its cache in Python objects, none of which becomes Core ML *state*. This wrapper reuses
the model's own submodules (embedding, norms, MLPs, projections, rotary tables) and re-implements only the
attention, so that the KV cache lives in two registered buffers written with slice updates: the pattern
coremltools documents for stateful models (``ct.StateType`` over the buffers -> ``read_state`` /
``coreml_update_state``).

The cache position is derived from shapes, as in Apple's Core ML Llama example: the inputs are ``input_ids``
``(1, L)`` and an additive ``causal_mask`` ``(1, 1, L, end)``; the new tokens occupy cache slots
``[end - L, end)``. One traced module therefore serves both ``prefill`` (L >= 1) and ``decode`` (L == 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# model_type -> layer layout. "sequential": x + attn(norm1(x)), then + mlp(norm2(.)) (LLaMA style);
# "parallel": x + attn(norm(x)) + mlp(norm(x)) (Phi).
SUPPORTED_FAMILIES: dict[str, str] = {
    "llama": "sequential",
    "qwen2": "sequential",
    "mistral": "sequential",
    "gemma": "sequential",
    "phi": "parallel",
}

# Families seen in transformers that this wrapper deliberately does not cover, and why (shown to the user).
UNSUPPORTED_REASONS: dict[str, str] = {
    "gemma2": "attention logit soft-capping and alternating sliding-window layers are not implemented",
    "gemma3": "alternating local/global attention with two rotary bases is not implemented",
    "qwen3": "per-head q/k RMSNorm is not implemented",
    "phi3": "fused qkv_proj / gate_up_proj weights are not implemented",
    "gpt_neox": "fused query_key_value projection is not implemented",
    "falcon": "fused query_key_value projection and alibi variants are not implemented",
    "gpt2": "learned absolute positions and Conv1D projections are not implemented",
    "opt": "learned absolute positions are not implemented",
    "mixtral": "mixture-of-experts routing is not implemented",
}

MASK_MIN = -1e4  # additive mask value: exp(-1e4) is 0 in fp32 and fp16 alike, and it stays finite in fp16


@dataclass(frozen=True)
class LMShape:
    """The geometry of a supported causal LM, read from its config."""

    family: str
    layout: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rotary_dim: int
    sliding_window: int | None

    def cache_shape(self, max_context: int) -> tuple[int, int, int, int, int]:
        """Shape of one of the two cache states (keys or values): (layers, batch 1, kv heads, context, head dim)."""
        return (self.num_layers, 1, self.num_kv_heads, max_context, self.head_dim)


def lm_shape(model: Any) -> LMShape:
    """Read the geometry of ``model`` (a transformers ``*ForCausalLM``); raise ``UnsupportedLMError`` if not covered."""
    from devicefit.errors import InputError

    config = getattr(model, "config", None)
    family = getattr(config, "model_type", None)
    if config is None or family is None:
        raise InputError(
            f"{type(model).__name__} has no transformers config; pass a Hugging Face *ForCausalLM model or folder"
        )
    if family not in SUPPORTED_FAMILIES:
        why = UNSUPPORTED_REASONS.get(family, "this family has not been mapped onto the stateful wrapper")
        covered = ", ".join(sorted(SUPPORTED_FAMILIES))
        raise InputError(
            f"{family} models are not covered by the stateful LM conversion ({why}); covered: {covered}"
        )
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    attn = model.model.layers[0].self_attn
    rotary_dim = int(getattr(attn, "rotary_ndims", head_dim))
    window = getattr(config, "sliding_window", None) if getattr(config, "use_sliding_window", True) else None
    return LMShape(
        family=family,
        layout=SUPPORTED_FAMILIES[family],
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_layers=config.num_hidden_layers,
        num_heads=heads,
        num_kv_heads=getattr(config, "num_key_value_heads", None) or heads,
        head_dim=head_dim,
        rotary_dim=rotary_dim,
        sliding_window=window,
    )


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class StatefulCausalLM(nn.Module):
    """``forward(input_ids, causal_mask) -> logits`` with the KV cache in buffers ``k_cache`` / ``v_cache``.

    Args:
        model: a transformers ``*ForCausalLM`` of a covered family, in eval mode.
        max_context: cache length (prompt + generated tokens).
        round_cache_fp16: round what is written into the cache to fp16, as Core ML (fp16-only states) stores it;
            used for the PyTorch reference that isolates conversion fidelity from cache storage.
    """

    k_cache: torch.Tensor
    v_cache: torch.Tensor
    rope_cos: torch.Tensor
    rope_sin: torch.Tensor
    hf: Any

    def __init__(self, model: Any, max_context: int, round_cache_fp16: bool = False):
        super().__init__()
        self.shape = lm_shape(model)
        self.hf = model
        self.max_context = max_context
        self.round_cache_fp16 = round_cache_fp16
        inner: Any = model.model
        with torch.no_grad():
            probe = torch.zeros(1, 1, self.shape.hidden_size)
            positions = torch.arange(max_context)[None]
            cos, sin = inner.rotary_emb(probe, positions)
        # NOTE: the tables come from the model's own rotary module, so rope scaling variants (llama3, linear,
        # dynamic at this length) are whatever transformers computes for positions [0, max_context).
        self.register_buffer("rope_cos", cos[0].float().clone(), persistent=False)
        self.register_buffer("rope_sin", sin[0].float().clone(), persistent=False)
        cache = self.shape.cache_shape(max_context)
        self.register_buffer("k_cache", torch.zeros(cache))
        self.register_buffer("v_cache", torch.zeros(cache))

    def reset_cache(self) -> None:
        """Zero both cache buffers (a new session)."""
        self.k_cache.zero_()
        self.v_cache.zero_()

    def _attention(self, i: int, attn: Any, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        s = self.shape
        seq = x.shape[1]
        end = mask.shape[-1]
        past = end - seq
        q = attn.q_proj(x).view(1, seq, s.num_heads, s.head_dim).transpose(1, 2)
        k = attn.k_proj(x).view(1, seq, s.num_kv_heads, s.head_dim).transpose(1, 2)
        v = attn.v_proj(x).view(1, seq, s.num_kv_heads, s.head_dim).transpose(1, 2)
        if getattr(attn, "qk_layernorm", False):  # Phi option
            q = attn.q_layernorm(q)
            k = attn.k_layernorm(k)
        cos = self.rope_cos[past:end][None, None]
        sin = self.rope_sin[past:end][None, None]
        r = s.rotary_dim
        if r == s.head_dim:
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
        else:  # partial rotary (Phi): rotate the first r dims only
            q = torch.cat((q[..., :r] * cos + _rotate_half(q[..., :r]) * sin, q[..., r:]), dim=-1)
            k = torch.cat((k[..., :r] * cos + _rotate_half(k[..., :r]) * sin, k[..., r:]), dim=-1)
        if self.round_cache_fp16:
            k = k.half().float()
            v = v.half().float()
        self.k_cache[i, :, :, past:end, :] = k
        self.v_cache[i, :, :, past:end, :] = v
        keys = self.k_cache[i, :, :, :end, :]
        values = self.v_cache[i, :, :, :end, :]
        rep = s.num_heads // s.num_kv_heads
        if rep > 1:  # grouped-query attention: each kv head serves `rep` query heads
            keys = (
                keys[:, :, None]
                .expand(1, s.num_kv_heads, rep, end, s.head_dim)
                .reshape(1, s.num_heads, end, -1)
            )
            values = (
                values[:, :, None]
                .expand(1, s.num_kv_heads, rep, end, s.head_dim)
                .reshape(1, s.num_heads, end, -1)
            )
        scores = torch.matmul(q, keys.transpose(2, 3)) * attn.scaling + mask
        probs = torch.softmax(scores, dim=-1)
        out = torch.matmul(probs, values).transpose(1, 2).reshape(1, seq, s.num_heads * s.head_dim)
        proj = attn.o_proj if hasattr(attn, "o_proj") else attn.dense
        return proj(out)

    def forward(self, input_ids: torch.Tensor, causal_mask: torch.Tensor) -> torch.Tensor:
        inner: Any = self.hf.model
        h = inner.embed_tokens(input_ids)
        layer: Any
        for i, layer in enumerate(inner.layers):
            normed = layer.input_layernorm(h)
            attn_out = self._attention(i, layer.self_attn, normed, causal_mask)
            if self.shape.layout == "parallel":
                h = h + attn_out + layer.mlp(normed)
            else:
                h = h + attn_out
                h = h + layer.mlp(layer.post_attention_layernorm(h))
        final_norm = inner.norm if hasattr(inner, "norm") else inner.final_layernorm
        return self.hf.lm_head(final_norm(h))


def causal_mask(seq: int, end: int) -> torch.Tensor:
    """The additive mask for ``seq`` new tokens at cache slots ``[end - seq, end)``: shape (1, 1, seq, end)."""
    past = end - seq
    rows = torch.arange(seq)[:, None] + past
    cols = torch.arange(end)[None, :]
    mask = torch.where(cols <= rows, 0.0, MASK_MIN)
    return mask[None, None].float()
