"""Multi-head latent attention (MLA: DeepSeek-V2 / V3) over a static cache of the compressed latent.

MLA projects each token to one shared latent ``c`` (``kv_a_proj_with_mqa``, then ``kv_a_layernorm``:
``kv_lora_rank`` values) plus one shared rotary key part (``qk_rope_head_dim`` values); ``kv_b_proj`` expands the
latent into every head's non-rotary key and its value. The cache keeps what the model's own cache keeps (transformers
caches the latent too), never the expanded per-head keys and values: that is MLA's memory point on a device.

The states keep the wrapper's two names, each one shared "head":

* ``k_cache`` (layers, 1, 1, context, ``kv_lora_rank``): the normalised latent ``c``;
* ``v_cache`` (layers, 1, 1, context, ``qk_rope_head_dim``): the rotated shared key part.

Attention runs in the "absorbed" form: head ``h``'s non-rotary score ``q_h . (W_k[h] c)`` is ``(q_h W_k[h]) . c``
and its output ``sum_t p_t W_v[h] c_t`` is ``W_v[h] (sum_t p_t c_t)``, with ``W_k`` / ``W_v`` the key and value rows of
``kv_b_proj`` (no bias). So each step reads the latent once instead of expanding it per head for every cached token;
equal to transformers' expanded form up to fp32 summation order.
"""

from __future__ import annotations

from typing import Any

import torch


def is_mla(attn: Any) -> bool:
    """True for an attention module with MLA's latent projections."""
    return all(hasattr(attn, n) for n in ("kv_a_proj_with_mqa", "kv_a_layernorm", "kv_b_proj", "o_proj"))


def latent_dims(model: Any) -> tuple[int, int]:
    """(``kv_lora_rank``, ``qk_rope_head_dim``): the widths of the two cached parts, per token and layer.

    Raises InputError where the expanded projection carries a bias (the absorbed form would need it folded in).
    """
    from devicefit.errors import InputError

    config = model.config
    for i, layer in enumerate(model.model.layers):
        if getattr(layer.self_attn.kv_b_proj, "bias", None) is not None:
            raise InputError(
                f"model.layers.{i}.self_attn.kv_b_proj has a bias: latent attention with a biased key / value "
                "expansion is not mapped onto the stateful LM conversion's latent cache"
            )
    return int(config.kv_lora_rank), int(config.qk_rope_head_dim)


def rotation(model: Any) -> str:
    """The rotary pairing: DeepSeek-V2 (complex rotation, no ``rope_interleave`` setting) and V3 with
    ``rope_interleave`` rotate pairs 2i / 2i + 1; V3 without it LLaMA's halves."""
    return "half" if getattr(model.config, "rope_interleave", True) is False else "interleaved_halves"


def latent_shape(model: Any, family: str) -> Any:
    """The geometry (an ``LMShape``) of a latent-attention model: queries / keys of ``qk_nope + qk_rope`` dims per
    head, one shared cached "head" of the latent and the rotated key part."""
    from devicefit.convert import lm_families as fam
    from devicefit.convert.lm_wrapper import LMShape

    config = model.config
    for i, layer in enumerate(model.model.layers):
        if fam.is_moe(layer.mlp):
            fam.check_moe(layer.mlp, f"model.layers.{i}.mlp")
    return LMShape(
        family=family,
        layout="sequential",
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_layers=config.num_hidden_layers,
        num_heads=config.num_attention_heads,
        num_kv_heads=1,
        head_dim=config.qk_nope_head_dim + config.qk_rope_head_dim,
        rotary_dim=config.qk_rope_head_dim,
        sliding_window=None,
        rotation=rotation(model),
        latent=latent_dims(model),
    )


def expanded_bytes_per_token(model: Any) -> int:
    """fp16 bytes per token and layer had the cache kept every head's key and value (for comparison)."""
    c = model.config
    return 2 * c.num_attention_heads * (c.qk_nope_head_dim + c.qk_rope_head_dim + c.v_head_dim)


def register_absorbed(wrapper: torch.nn.Module, model: Any) -> None:
    """Register each layer's ``kv_b_proj`` split per head into its key rows transposed (heads, lora, nope) and its
    value rows (heads, v, lora), the operands of the absorbed form, as buffers of the wrapper: each laid out as a
    Linear weight (outputs, inputs) and used as the left matmul operand, as stored, like the expert tensors.

    NOTE: sliced out of the weight inside the trace they would become unnamed folded constants, which compression
    cannot place by role; as buffers named ``layers_<i>_self_attn_kv_b_*`` they keep that name in the package and
    are compressed with the attention weights.
    """
    c = model.config
    heads, nope, v_dim, lora = c.num_attention_heads, c.qk_nope_head_dim, c.v_head_dim, c.kv_lora_rank
    for i, layer in enumerate(model.model.layers):
        # kv_b_proj's rows per head: [key (nope) | value (v)], each a (dims, lora) map from the latent
        expand = layer.self_attn.kv_b_proj.weight.detach().view(heads, nope + v_dim, lora)
        key, value = torch.split(expand, [nope, v_dim], dim=1)
        wrapper.register_buffer(
            f"layers_{i}_self_attn_kv_b_key", key.transpose(1, 2).contiguous(), persistent=False
        )
        wrapper.register_buffer(f"layers_{i}_self_attn_kv_b_value", value.clone(), persistent=False)


def attention(wrapper: Any, i: int, attn: Any, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Layer ``i``'s MLA over the wrapper's latent cache; returns the output projection's result."""
    config = wrapper.hf.config
    heads, nope, rope, v_dim = (
        config.num_attention_heads,
        config.qk_nope_head_dim,
        config.qk_rope_head_dim,
        config.v_head_dim,
    )
    lora = config.kv_lora_rank
    seq = x.shape[1]
    end = mask.shape[-1]
    past = end - seq
    q_proj: Any = getattr(attn, "q_proj", None)
    q = q_proj(x) if q_proj is not None else attn.q_b_proj(attn.q_a_layernorm(attn.q_a_proj(x)))
    q = q.view(1, seq, heads, nope + rope).transpose(1, 2)
    q_nope, q_rot = torch.split(q, [nope, rope], dim=-1)
    latent, k_rot = torch.split(attn.kv_a_proj_with_mqa(x), [lora, rope], dim=-1)
    latent = attn.kv_a_layernorm(latent).view(1, 1, seq, lora)
    k_rot = k_rot.view(1, 1, seq, rope)
    q_rot = wrapper._rope(i, attn, q_rot, past, end)
    k_rot = wrapper._rope(i, attn, k_rot, past, end)
    if wrapper.round_cache_fp16:
        latent = latent.half().float()
        k_rot = k_rot.half().float()
    wrapper.k_cache[i, :, :, past:end, :] = latent
    wrapper.v_cache[i, :, :, past:end, :] = k_rot
    latents = wrapper.k_cache[i, :, :, :end, :]  # (1, 1, end, lora)
    rotated = wrapper.v_cache[i, :, :, :end, :]  # (1, 1, end, rope)
    w_key = getattr(wrapper, f"layers_{i}_self_attn_kv_b_key")  # (heads, lora, nope)
    w_value = getattr(wrapper, f"layers_{i}_self_attn_kv_b_value")  # (heads, v, lora)
    q_latent = torch.matmul(w_key, q_nope.transpose(2, 3))  # (1, heads, lora, seq)
    scores = torch.matmul(q_latent.transpose(2, 3), latents.transpose(2, 3)) + torch.matmul(
        q_rot, rotated.transpose(2, 3)
    )
    probs = torch.softmax(scores * attn.scaling + mask, dim=-1)
    mixed = torch.matmul(probs, latents)  # (1, heads, seq, lora)
    out = torch.matmul(w_value, mixed.transpose(2, 3))  # (1, heads, v, seq)
    return attn.o_proj(out.permute(0, 3, 1, 2).reshape(1, seq, heads * v_dim))
