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

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from devicefit.convert import lm_families as fam
from devicefit.convert import lm_mla
from devicefit.convert.lm_families import SUPPORTED_FAMILIES, UNSUPPORTED_REASONS
from devicefit.convert.lm_infer import Wiring

__all__ = [
    "SUPPORTED_FAMILIES",
    "UNSUPPORTED_REASONS",
    "LMShape",
    "StatefulCausalLM",
    "causal_mask",
    "lm_shape",
    "stateful_wrapper",
]

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
    sliding_window: int | None  # the smallest window of any layer (None: every layer attends to all)
    # rotary pairing: "half" (LLaMA: i with i + d/2), "interleaved" (Cohere: 2i with 2i + 1, tables interleaved by
    # the model's rotary module), "interleaved_halves" (2i with 2i + 1, the tables' first half interleaved) or
    # "half_doubled" (LLaMA's pairing from half-width tables: gpt-oss)
    rotation: str = "half"
    # only the sliding-window layers rotate (Cohere 2's global layers are NoPE)
    rope_windowed_only: bool = False
    # a family not written for: the probe's logit difference, and its norm modules by role (lm_infer.py)
    verified: float | None = None
    roles: tuple[str | None, ...] | None = None
    # latent attention (MLA, lm_mla.py): the cached widths (kv_lora_rank, qk_rope_head_dim) of one shared "head"
    latent: tuple[int, int] | None = None
    # a hybrid (LFM2, lm_hybrid.py): the indices of the layers that attend (the KV cache has one slot each)
    attention_layers: tuple[int, ...] | None = None
    # its convolution layers' state: (conv layers, channels, steps kept), the ``conv_state`` (no positions)
    conv: tuple[int, int, int] | None = None

    def cache_shapes(self, max_context: int) -> dict[str, tuple[int, ...]]:
        """Shape of each state: the cache (layers, batch 1, kv heads, context, width) keeps the keys and values of
        every kv head; for latent attention the latent (``k_cache``) and the rotated shared key (``v_cache``), one
        head. A hybrid adds ``conv_state`` (conv layers, batch 1, channels, steps)."""
        layers = self.num_layers if self.attention_layers is None else len(self.attention_layers)
        shapes: dict[str, tuple[int, ...]]
        if self.latent is not None:
            lora, rope = self.latent
            shapes = {
                "k_cache": (layers, 1, 1, max_context, lora),
                "v_cache": (layers, 1, 1, max_context, rope),
            }
        else:
            shape = (layers, 1, self.num_kv_heads, max_context, self.head_dim)
            shapes = {"k_cache": shape, "v_cache": shape}
        if self.conv is not None:
            count, channels, steps = self.conv
            shapes["conv_state"] = (count, 1, channels, steps)
        return shapes

    def cache_shape(self, max_context: int) -> tuple[int, ...]:
        """Shape of the ``k_cache`` state (for attention other than latent, ``v_cache``'s too)."""
        return self.cache_shapes(max_context)["k_cache"]

    def cache_bytes_per_layer(self, context: int) -> int:
        """fp16 bytes of one attention layer's cache (both states) at ``context`` tokens."""
        shapes = self.cache_shapes(context)
        return sum(2 * math.prod(shapes[name][1:]) for name in ("k_cache", "v_cache"))

    def state_bytes(self, context: int) -> int:
        """fp16 bytes of every state at ``context`` tokens: the whole KV cache, and a hybrid's conv state."""
        return sum(2 * math.prod(shape) for shape in self.cache_shapes(context).values())


def lm_shape(model: Any, wiring: Wiring | None = None) -> LMShape:
    """Read the geometry of ``model`` (a transformers ``*ForCausalLM``); raise ``InputError`` if not covered.

    A family outside :data:`SUPPORTED_FAMILIES` is covered when its modules carry LLaMA's names and the wrapper
    reproduces its logits (:mod:`devicefit.convert.lm_infer`); ``wiring`` skips that verification (the probe's
    own wrappers pass the wiring they try).
    """
    from devicefit.errors import InputError

    config = getattr(model, "config", None)
    family = getattr(config, "model_type", None)
    if config is None or family is None:
        raise InputError(
            f"{type(model).__name__} has no transformers config; pass a Hugging Face *ForCausalLM model or folder"
        )
    if family not in SUPPORTED_FAMILIES:
        if family in UNSUPPORTED_REASONS:
            raise not_covered(family, UNSUPPORTED_REASONS[family])
        if wiring is None:
            from devicefit.convert.lm_infer import verified_wiring

            verdict = verified_wiring(model)
            if isinstance(verdict, str):
                raise not_covered(family, verdict)
            wiring = verdict
    if family in fam.CLASSIC_FAMILIES:
        from devicefit.convert.lm_classic import classic_shape

        return classic_shape(model)
    if family in fam.HYBRID_FAMILIES:
        from devicefit.convert.lm_hybrid import conv_shape

        return conv_shape(model)
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    layers = model.model.layers
    if lm_mla.is_mla(layers[0].self_attn):
        return lm_mla.latent_shape(model, family)
    attn = layers[0].self_attn
    rotary_dim = int(getattr(attn, "rotary_ndims", None) or head_dim * _partial_rotary(config))
    windows = [fam.sliding_window(config, layer.self_attn, i) for i, layer in enumerate(layers)]
    for i, layer in enumerate(layers):
        mlp = fam.mlp_of(layer)
        if fam.is_moe(mlp) and type(mlp).__name__ not in fam.DENSE_MOE_BLOCKS:
            fam.check_moe(mlp, f"model.layers.{i}.mlp")
    return LMShape(
        family=family,
        layout=wiring.layout if wiring else fam.layout(model, family),
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_layers=config.num_hidden_layers,
        num_heads=heads,
        num_kv_heads=getattr(config, "num_key_value_heads", None) or heads,
        head_dim=head_dim,
        rotary_dim=rotary_dim,
        sliding_window=min((w for w in windows if w), default=None),
        rotation=wiring.rotation if wiring else fam.ROTATION.get(family, "half"),
        rope_windowed_only=wiring.rope_windowed_only if wiring else False,
        verified=wiring.probe_error if wiring else None,
        roles=wiring.roles if wiring else None,
    )


def not_covered(family: str, why: str) -> Exception:
    """The refusal of a family the stateful LM conversion does not cover, saying why and what to do."""
    from devicefit.errors import InputError

    covered = ", ".join(sorted(SUPPORTED_FAMILIES))
    return InputError(
        f"{family} models are not covered by the stateful LM conversion ({why}); covered: {covered} and "
        "LLaMA-shaped families the wrapper reproduces; `devicefit check MODEL --task default` checks the plain "
        "forward (no KV cache) instead"
    )


def _partial_rotary(config: Any) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    factor = params.get("partial_rotary_factor") if isinstance(params, dict) else None
    return float(factor or getattr(config, "partial_rotary_factor", None) or 1.0)


class StatefulCausalLM(nn.Module):
    """``forward(input_ids, causal_mask) -> logits`` with the KV cache in buffers ``k_cache`` / ``v_cache``.

    Args:
        model: a transformers ``*ForCausalLM`` of a covered family, in eval mode.
        max_context: cache length (prompt + generated tokens).
        round_cache_fp16: round what is written into the cache to fp16, as Core ML (fp16-only states) stores it;
            used for the PyTorch reference that isolates conversion fidelity from cache storage.
        wiring: layout and rotary pairing for a family not written for (default: verified, lm_infer.py).
    """

    k_cache: torch.Tensor
    v_cache: torch.Tensor
    positions: torch.Tensor
    # Llama 4: each cache slot's chunk number, and the per-position query scale of its NoPE layers
    chunk_index: torch.Tensor
    attn_temperature: torch.Tensor
    hf: Any

    def __init__(
        self, model: Any, max_context: int, round_cache_fp16: bool = False, wiring: Wiring | None = None
    ):
        super().__init__()
        self.shape = lm_shape(model, wiring)
        self.hf = model
        self.max_context = max_context
        self.round_cache_fp16 = round_cache_fp16
        inner: Any = model.model
        config = model.config
        # NOTE: the tables come from the model's own rotary module, so rope scaling variants (llama3, linear,
        # dynamic at this length) are whatever transformers computes for positions [0, max_context).
        tables = fam.rope_tables(inner, self.shape.hidden_size, max_context)
        self.rope_key = {t: f"rope_{i}" for i, t in enumerate(tables)}
        # OLMo 2 normalises q / k over the whole projection (before the heads split); Qwen3, Gemma 3 and
        # Cohere per head. Decided here, from the weight's shape, so that tracing sees no Python branch.
        q_norm = getattr(inner.layers[0].self_attn, "q_norm", None)
        s = self.shape
        self.qk_norm_whole = q_norm is not None and tuple(q_norm.weight.shape) == (s.num_heads * s.head_dim,)
        if self.shape.rotation == "half_doubled":
            # gpt-oss: the model's rotary module returns one cos / sin per pair, [f_0..f_n]; LLaMA's pairing
            # (i with i + d/2) needs them for both halves
            tables = {
                t: (torch.cat((c, c), dim=-1), torch.cat((n, n), dim=-1)) for t, (c, n) in tables.items()
            }
        if self.shape.rotation == "interleaved_halves":
            # Helium, ERNIE 4.5, GLM: the model's rotary module returns LLaMA's [f_0..f_n, f_0..f_n] tables and its
            # attention interleaves the first half ([f_0, f_0, f_1, f_1, ...]) to rotate pairs 2i / 2i + 1
            tables = {t: fam.interleave_halves(cos, sin) for t, (cos, sin) in tables.items()}
        self.rope_dims = {t: int(cos.shape[-1]) for t, (cos, _) in tables.items()}
        for t, (cos, sin) in tables.items():
            self.register_buffer(f"{self.rope_key[t]}_cos", cos, persistent=False)
            self.register_buffer(f"{self.rope_key[t]}_sin", sin, persistent=False)
        self.layer_rope = [
            fam.layer_type(config, i) if None not in tables else None for i in range(len(inner.layers))
        ]
        self.windows = [
            fam.sliding_window(config, layer.self_attn, i) for i, layer in enumerate(inner.layers)
        ]
        self.chunks = [fam.attention_chunk(config, i) for i in range(len(inner.layers))]
        # slot index of each cache position: sliding-window layers mask keys by distance from the query.
        # NOTE: int32, not float: an fp16 package stores float constants in fp16, exact for integers <= 2048 only
        # (slot 2049 read 2048, and the window let one key too many through); int32 constants stay int32
        self.register_buffer("positions", torch.arange(max_context, dtype=torch.int32), persistent=False)
        chunk = min((c for c in self.chunks if c), default=None)
        if chunk is not None:  # each slot's chunk number (Llama 4 has one chunk size), int32 like the slots
            chunk_index = torch.div(self.positions, chunk, rounding_mode="floor")
            self.register_buffer("chunk_index", chunk_index, persistent=False)
        temperature = fam.attention_temperature(config, max_context)
        if temperature is not None:
            self.register_buffer("attn_temperature", temperature, persistent=False)
        self.rotate = fam.rotate_half if self.shape.rotation.startswith("half") else fam.rotate_interleaved
        self.roles = self.shape.roles
        self.embedding_multiplier = float(getattr(config, "embedding_multiplier", 1.0) or 1.0)
        if getattr(config, "mup_enabled", False):  # AFMoE's muP: embeddings scaled by sqrt(hidden size)
            self.embedding_multiplier *= config.hidden_size**0.5
        self.residual_multiplier = float(getattr(config, "residual_multiplier", 1.0) or 1.0)
        self.latent = self.shape.latent is not None
        if self.latent:
            lm_mla.register_absorbed(self, model)
        for name, cache in self.shape.cache_shapes(max_context).items():
            self.register_buffer(name, torch.zeros(cache))

    def reset_cache(self) -> None:
        """Zero every state buffer (a new session)."""
        for name in self.shape.cache_shapes(1):
            getattr(self, name).zero_()

    def _qkv(self, attn: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Projections as (1, seq, heads, head dim), q/k normalised where the family normalises them."""
        s = self.shape
        seq = x.shape[1]
        if hasattr(attn, "qkv_proj"):  # Phi-3: one fused projection, split as the model splits it
            q_size, kv_size = s.num_heads * s.head_dim, s.num_kv_heads * s.head_dim
            q, k, v = attn.qkv_proj(x).split((q_size, kv_size, kv_size), dim=-1)
        else:
            q, k, v = attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
        q_norm: Any = getattr(attn, "q_norm", None)
        k_norm: Any = getattr(attn, "k_norm", None)
        if q_norm is not None and self.qk_norm_whole:
            q, k = q_norm(q), k_norm(k)
        q = q.view(1, seq, s.num_heads, s.head_dim)
        k = k.view(1, seq, s.num_kv_heads, s.head_dim)
        if q_norm is not None and not self.qk_norm_whole:
            q, k = q_norm(q), k_norm(k)
        return q, k, v.view(1, seq, s.num_kv_heads, s.head_dim)

    def _rope(self, i: int, attn: Any, x: torch.Tensor, past: Any, end: Any) -> torch.Tensor:
        if not getattr(attn, "use_rope", True):  # SmolLM3: some layers use no positional encoding
            return x
        if self.shape.rope_windowed_only and self.windows[i] is None:  # Cohere 2's global layers
            return x
        kind = self.layer_rope[i]
        cos = getattr(self, f"{self.rope_key[kind]}_cos")[past:end][None, None]
        sin = getattr(self, f"{self.rope_key[kind]}_sin")[past:end][None, None]
        r = self.rope_dims[kind]
        if r == x.shape[-1]:
            return x * cos + self.rotate(x) * sin
        # partial rotary (Phi, StableLM): the first r dims rotate
        return torch.cat((x[..., :r] * cos + self.rotate(x[..., :r]) * sin, x[..., r:]), dim=-1)

    def _attention(self, i: int, attn: Any, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.latent:  # DeepSeek's latent attention over the latent cache
            return lm_mla.attention(self, i, attn, x, mask)
        end = mask.shape[-1]
        past = end - x.shape[1]
        q, k, v = self._qkv(attn, x)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if getattr(attn, "qk_layernorm", False):  # Phi, StableLM (per head, on the head-first layout)
            q = attn.q_layernorm(q)
            k = attn.k_layernorm(k)
        q, k = self._rope(i, attn, q, past, end), self._rope(i, attn, k, past, end)
        if hasattr(attn, "query_layernorm"):  # HunYuan: per-head q/k norm after the rotation
            q, k = attn.query_layernorm(q), attn.key_layernorm(k)
        if hasattr(attn, "qk_norm"):  # Llama 4: one weightless L2 norm for q and k, after the rotation
            q, k = attn.qk_norm(q), attn.qk_norm(k)
        if hasattr(self, "attn_temperature") and not getattr(attn, "use_rope", True):
            # Llama 4's NoPE layers scale each query by its position's temperature
            q = q * self.attn_temperature[past:end][None, None, :, None]
        cap = getattr(attn, "attn_logit_softcapping", None)
        out = self._attend(i, q, k, v, mask, attn.scaling, cap, sinks=getattr(attn, "sinks", None))
        if hasattr(attn, "gate_proj"):  # AFMoE: the heads' outputs gated by sigmoid(gate_proj(x))
            out = out * torch.sigmoid(attn.gate_proj(x))
        proj = attn.o_proj if hasattr(attn, "o_proj") else attn.dense
        return proj(out)

    def _attend(
        self,
        i: int,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor,
        scaling: float,
        cap: float | None = None,
        bias: torch.Tensor | None = None,
        sinks: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Write layer ``i``'s new keys / values (head first, rotated) into the cache and attend over it.

        Returns the heads' outputs as (1, seq, heads * head dim), before the output projection. ``bias``: an
        additive per-key bias (heads, 1, end) added to the scaled scores (ALiBi). ``sinks``: one learned logit per
        head that joins each row's softmax and takes its share of the weight without a value (gpt-oss).
        """
        s = self.shape
        seq = mask.shape[-2]
        end = mask.shape[-1]
        past = end - seq
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
        scores = torch.matmul(q, keys.transpose(2, 3)) * scaling
        if cap:  # Gemma 2: scores soft-capped before the mask
            scores = torch.tanh(scores / cap) * cap
        if bias is not None:
            scores = scores + bias
        window = self.windows[i]
        if window is not None and window < self.max_context:
            # keys at distance >= window from the query are masked (transformers: kv > q - window)
            rows = self.positions[past:end][:, None]
            cols = self.positions[:end][None, :]
            mask = mask + (rows - cols >= window).float() * MASK_MIN
        chunk = self.chunks[i] if hasattr(self, "chunks") else None
        if chunk is not None and chunk < self.max_context:
            # chunked local attention: keys of an earlier chunk than the query's are masked (transformers:
            # kv // chunk == q // chunk, on top of the causal mask)
            rows = self.chunk_index[past:end][:, None]
            cols = self.chunk_index[:end][None, :]
            mask = mask + (rows - cols >= 1).float() * MASK_MIN
        if sinks is not None:
            logits = scores + mask
            sink = sinks.reshape(1, -1, 1, 1).expand(1, s.num_heads, seq, 1).to(logits.dtype)
            probs = torch.softmax(torch.cat((logits, sink), dim=-1), dim=-1)[..., :-1]
        else:
            probs = torch.softmax(scores + mask, dim=-1)
        return torch.matmul(probs, values).transpose(1, 2).reshape(1, seq, s.num_heads * s.head_dim)

    def _layer_by_roles(self, i: int, layer: Any, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One decoder layer of a family not written for, its norms called by role: before / after attention,
        before / after the MLP (a role without a module is the identity); parallel: both read one norm."""
        pre_attn, post_attn, pre_mlp, post_mlp = (getattr(layer, n) if n else None for n in self.roles or ())
        x = pre_attn(h) if pre_attn is not None else h
        attn_out = self._attention(i, layer.self_attn, x, mask)
        if self.shape.layout == "parallel":
            return h + attn_out + self._mlp(layer, x)
        h = h + (post_attn(attn_out) if post_attn is not None else attn_out)
        mlp_out = self._mlp(layer, pre_mlp(h) if pre_mlp is not None else h)
        return h + (post_mlp(mlp_out) if post_mlp is not None else mlp_out)

    def _mlp(self, layer: Any, x: torch.Tensor) -> torch.Tensor:
        return fam.feed_forward(fam.mlp_of(layer), x)

    def forward(self, input_ids: torch.Tensor, causal_mask: torch.Tensor) -> torch.Tensor:
        inner: Any = self.hf.model
        h = inner.embed_tokens(input_ids)
        if self.embedding_multiplier != 1.0:  # Granite, AFMoE's muP
            h = h * self.embedding_multiplier
        r = self.residual_multiplier  # Granite scales each branch before the residual add
        layout = self.shape.layout
        layer: Any
        for i, layer in enumerate(inner.layers):
            if self.roles is not None:  # a family not written for: its norms by role (lm_infer.NORM_ROLES)
                h = self._layer_by_roles(i, layer, h, causal_mask)
                continue
            if layout == "post_norm":
                h = h + layer.post_attention_layernorm(self._attention(i, layer.self_attn, h, causal_mask))
                h = h + layer.post_feedforward_layernorm(self._mlp(layer, h))
                continue
            normed = layer.input_layernorm(h)
            attn_out = self._attention(i, layer.self_attn, normed, causal_mask)
            if layout == "parallel":
                h = h + attn_out + self._mlp(layer, normed)
            elif layout == "sandwich":
                h = h + layer.post_attention_layernorm(attn_out)
                h = h + layer.post_feedforward_layernorm(self._mlp(layer, layer.pre_feedforward_layernorm(h)))
            else:
                h = h + attn_out * r if r != 1.0 else h + attn_out
                mlp_out = self._mlp(layer, layer.post_attention_layernorm(h))
                h = h + mlp_out * r if r != 1.0 else h + mlp_out
        final_norm = inner.norm if hasattr(inner, "norm") else inner.final_layernorm
        logits = self.hf.lm_head(final_norm(h))
        return fam.logits_transform(self.hf.config, self.shape.family, logits)


def stateful_wrapper(model: Any, max_context: int, round_cache_fp16: bool = False) -> StatefulCausalLM:
    """The stateful wrapper of ``model``'s family: :class:`StatefulCausalLM`, or its classic-family form
    (:class:`~devicefit.convert.lm_classic.ClassicCausalLM`: GPT-2, GPT-NeoX, OPT, GPT-J, CodeGen, Falcon, BLOOM, MPT;
    :class:`~devicefit.convert.lm_hybrid.ShortConvCausalLM`: LFM2)."""
    family = getattr(getattr(model, "config", None), "model_type", None)
    if family in fam.CLASSIC_FAMILIES:
        from devicefit.convert.lm_classic import ClassicCausalLM

        return ClassicCausalLM(model, max_context, round_cache_fp16)
    if family in fam.HYBRID_FAMILIES:
        from devicefit.convert.lm_hybrid import ShortConvCausalLM

        return ShortConvCausalLM(model, max_context, round_cache_fp16)
    return StatefulCausalLM(model, max_context, round_cache_fp16)


def causal_mask(seq: int, end: int) -> torch.Tensor:
    """The additive mask for ``seq`` new tokens at cache slots ``[end - seq, end)``: shape (1, 1, seq, end)."""
    past = end - seq
    rows = torch.arange(seq)[:, None] + past
    cols = torch.arange(end)[None, :]
    mask = torch.where(cols <= rows, 0.0, MASK_MIN)
    return mask[None, None].float()
