"""LFM2 (Liquid): attention layers between gated short-convolution layers, with a convolution state.

LFM2-MoE has the same layers; after its first ``num_dense_layers`` the MLP is a sigmoid mixture of experts with
an expert bias, computed densely as every covered mixture (:func:`devicefit.convert.lm_families.dense_moe`).

A convolution layer of LFM2 projects its input to three parts ``B``, ``C``, ``x``, convolves ``B * x`` causally
over time with a depthwise kernel of ``conv_L_cache`` steps, gates the result with ``C`` and projects it back.
The only thing it keeps between tokens is the last ``conv_L_cache - 1`` steps of ``B * x``: that window is a
third Core ML state, ``conv_state`` (conv layers, 1, hidden, ``conv_L_cache - 1``), beside the attention
layers' ``k_cache`` / ``v_cache`` (attention layers only). Each call convolves the state followed by the new
steps, then keeps the last ``conv_L_cache - 1`` of them.

The convolution state has no positions to mask: a padded prompt would leave padding in it, so a package of this
family takes any prompt length (no enumerated prefill lengths) and is never padded.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from devicefit.convert import lm_families as fam
from devicefit.convert.lm_wrapper import LMShape, StatefulCausalLM

__all__ = ["ShortConvCausalLM", "conv_shape"]


def conv_shape(model: Any) -> LMShape:
    """The geometry of an LFM2 model: its attention layers' cache and its convolution layers' state."""
    from devicefit.errors import InputError

    config = model.config
    layers = model.model.layers
    attention = tuple(i for i, layer in enumerate(layers) if layer.is_attention_layer)
    convs = tuple(i for i, layer in enumerate(layers) if not layer.is_attention_layer)
    kernel = int(config.conv_L_cache)
    if not attention or kernel < 2:
        raise InputError(
            f"this LFM2 config has {len(attention)} attention layers and a convolution of {kernel} steps; the "
            "conversion expects at least one attention layer and a kernel of >= 2 steps (every released LFM2 has both)"
        )
    for i, layer in enumerate(layers):
        mlp = fam.mlp_of(layer)
        if fam.is_moe(mlp):
            fam.check_moe(mlp, f"model.layers.{i}.feed_forward")
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return LMShape(
        family=config.model_type,
        layout="short_conv",
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_layers=config.num_hidden_layers,
        num_heads=heads,
        num_kv_heads=getattr(config, "num_key_value_heads", None) or heads,
        head_dim=head_dim,
        rotary_dim=head_dim,
        sliding_window=None,
        attention_layers=attention,
        conv=(len(convs), config.hidden_size, kernel - 1) if convs else None,
    )


class ShortConvCausalLM(StatefulCausalLM):
    """:class:`StatefulCausalLM` for LFM2: the same inputs, output and KV cache (attention layers only), plus
    the ``conv_state`` buffer of the convolution layers."""

    conv_state: torch.Tensor
    rope_cos: torch.Tensor
    rope_sin: torch.Tensor

    def __init__(self, model: Any, max_context: int, round_cache_fp16: bool = False):
        nn.Module.__init__(self)
        self.shape = conv_shape(model)
        self.hf = model
        self.max_context = max_context
        self.round_cache_fp16 = round_cache_fp16
        inner: Any = model.model
        rotary = getattr(inner, "rotary_emb", None) or inner.pos_emb  # LFM2-MoE names it pos_emb
        ((cos, sin),) = fam.rope_tables(inner, self.shape.hidden_size, max_context, rotary).values()
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        # each layer's slot in its own state: attention layers in the KV cache, conv layers in conv_state
        self.slots: dict[int, int] = {}
        for kind in (True, False):
            found = [i for i, layer in enumerate(inner.layers) if layer.is_attention_layer is kind]
            self.slots.update({i: slot for slot, i in enumerate(found)})
        attention = len(self.shape.attention_layers or ())
        self.windows = [None] * attention  # _attend reads these per cache slot: LFM2 attends to all
        self.chunks = [None] * attention
        for name, shape in self.shape.cache_shapes(max_context).items():
            self.register_buffer(name, torch.zeros(shape))

    def _lfm2_attention(self, i: int, attn: Any, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        s = self.shape
        seq, end = x.shape[1], mask.shape[-1]
        past = end - seq
        q = attn.q_layernorm(attn.q_proj(x).view(1, seq, s.num_heads, s.head_dim)).transpose(1, 2)
        k = attn.k_layernorm(attn.k_proj(x).view(1, seq, s.num_kv_heads, s.head_dim)).transpose(1, 2)
        v = attn.v_proj(x).view(1, seq, s.num_kv_heads, s.head_dim).transpose(1, 2)
        cos, sin = self.rope_cos[past:end][None, None], self.rope_sin[past:end][None, None]
        q, k = q * cos + fam.rotate_half(q) * sin, k * cos + fam.rotate_half(k) * sin
        return attn.out_proj(self._attend(self.slots[i], q, k, v, mask, attn.scaling))

    def _short_conv(self, i: int, conv: Any, x: torch.Tensor) -> torch.Tensor:
        """The gated causal convolution over the state's steps followed by the new ones; the state keeps the
        last ``conv_L_cache - 1`` steps of ``B * x``."""
        slot, steps = self.slots[i], self.conv_state.shape[-1]
        b, c, h = conv.in_proj(x).transpose(-1, -2).chunk(3, dim=-2)
        bx = b * h  # (1, hidden, seq)
        window = torch.cat((self.conv_state[slot], bx), dim=-1)
        # NOTE: the last steps one by one (static shapes); one slice of a prompt-length window has a symbolic
        # length the state's write cannot check against its fixed shape
        kept = torch.stack([window[..., j - steps] for j in range(steps)], dim=-1)
        self.conv_state[slot] = kept.half().float() if self.round_cache_fp16 else kept
        # depthwise: one kernel per channel, no padding (the state is the left context)
        out = F.conv1d(window, conv.conv.weight, conv.conv.bias, groups=window.shape[1])
        return conv.out_proj((c * out).transpose(-1, -2))

    def forward(self, input_ids: torch.Tensor, causal_mask: torch.Tensor) -> torch.Tensor:
        inner: Any = self.hf.model
        h = inner.embed_tokens(input_ids)
        layer: Any
        for i, layer in enumerate(inner.layers):
            x = layer.operator_norm(h)
            if layer.is_attention_layer:
                h = h + self._lfm2_attention(i, layer.self_attn, x, causal_mask)
            else:
                h = h + self._short_conv(i, layer.conv, x)
            h = h + fam.feed_forward(layer.feed_forward, layer.ffn_norm(h))  # experts densely (LFM2-MoE)
        # NOTE: LFM2 names its final norm embedding_norm; it is applied after the last layer
        return self.hf.lm_head(inner.embedding_norm(h))
