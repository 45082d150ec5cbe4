"""The stateful wrapper for the classic GPT-style families: GPT-2, GPT-BigCode (StarCoder, SantaCoder), GPT-NeoX
(Pythia), OPT, GPT-J, CodeGen, Falcon, BLOOM, MPT.

These predate the LLaMA module layout (``model.model.layers[i].self_attn.q_proj``): their modules live under
``transformer.h`` / ``gpt_neox.layers`` / ``model.decoder.layers``, several fuse q/k/v into one projection laid
out per head (CodeGen: in 4 groups of [q | v | k]), and their positions are learned tables (GPT-2, OPT), a sinusoid
table (GPT-J, CodeGen) or ALiBi biases (BLOOM, MPT, some Falcons). As for the other families, the model's own modules (embeddings, position tables, norms,
projections, MLPs, rotary and ALiBi tables) do the work; only the attention over the static cache is
re-implemented (:meth:`StatefulCausalLM._attend`, shared with the other families).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from devicefit.convert import lm_families as fam
from devicefit.convert.lm_wrapper import LMShape, StatefulCausalLM

__all__ = ["ClassicCausalLM", "classic_shape"]


def _parts(model: Any) -> tuple[Any, Any, Any]:
    """(base model, decoder layers, final norm or None) of a classic family's ``*ForCausalLM``."""
    family = model.config.model_type
    if family == "gpt_neox":
        inner = model.gpt_neox
        return inner, inner.layers, inner.final_layer_norm
    if family == "opt":
        inner = model.model.decoder
        return inner, inner.layers, inner.final_layer_norm
    inner = model.transformer
    if family == "mpt":
        return inner, inner.blocks, inner.norm_f
    return inner, inner.h, inner.ln_f


def _attn(layer: Any) -> Any:
    for name in ("attn", "attention", "self_attn", "self_attention"):
        if hasattr(layer, name):
            return getattr(layer, name)
    raise AttributeError(f"{type(layer).__name__} has no attention module")


def _falcon_kv_heads(config: Any) -> int:
    if config.new_decoder_architecture:
        return int(config.num_kv_heads)
    return 1 if config.multi_query else int(config.num_attention_heads)


def _layout(model: Any) -> str:
    config, family = model.config, model.config.model_type
    if family == "gpt_neox":
        return "parallel" if config.use_parallel_residual else "sequential"
    if family == "opt":
        return "sequential" if config.do_layer_norm_before else "post_norm"
    if family == "falcon":
        return "parallel" if (config.parallel_attn or config.new_decoder_architecture) else "sequential"
    return fam.SUPPORTED_FAMILIES[family]


def _rotary_dim(model: Any, head_dim: int) -> int:
    family = model.config.model_type
    attn = _attn(_parts(model)[1][0])
    if family == "gpt_neox":
        return int(attn.rotary_ndims)
    if family in ("gptj", "codegen"):
        return int(attn.rotary_dim or head_dim)
    if family == "falcon" and not model.config.alibi:
        return head_dim
    return 0


# MPT settings transformers' MptModel reads no further than its config: a checkpoint that sets them computes
# something else than transformers does, so neither can serve as the other's reference (setting -> its default)
_MPT_IGNORED = {"qk_ln": False, "alibi": True, "alibi_bias_max": 8, "attn_type": "multihead_attention",
                "prefix_lm": False}  # fmt: skip


def _check_mpt(config: Any) -> None:
    """Refuse an MPT configuration transformers does not run as written, naming the setting."""
    from devicefit.errors import InputError

    attn = config.attn_config
    settings = {f"attn_config.{n}": (getattr(attn, n, d), d) for n, d in _MPT_IGNORED.items()}
    settings["logit_scale"] = (getattr(config, "logit_scale", None), None)
    settings["no_bias"] = (getattr(config, "no_bias", True), True)  # transformers' MPT builds no biases
    for name, (value, default) in settings.items():
        if value != default:
            raise InputError(
                f"this mpt model sets {name}={value!r}, which transformers' MPT ignores (it runs {default!r}): "
                "neither its output nor a conversion of it would be this checkpoint's, so it is not converted; "
                f"MPT checkpoints with {name}={default!r} are covered"
            )


def classic_shape(model: Any) -> LMShape:
    """The geometry of a classic-family model (see :func:`devicefit.convert.lm_wrapper.lm_shape`)."""
    config = model.config
    if config.model_type == "mpt":
        _check_mpt(config)
    heads = config.num_attention_heads
    head_dim = config.hidden_size // heads
    kv_heads = _falcon_kv_heads(config) if config.model_type == "falcon" else heads
    if config.model_type == "gpt_bigcode" and config.multi_query:
        kv_heads = 1
    return LMShape(
        family=config.model_type,
        layout=_layout(model),
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_layers=len(_parts(model)[1]),
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        rotary_dim=_rotary_dim(model, head_dim),
        sliding_window=None,
    )


def _position_limit(model: Any) -> tuple[int, str] | None:
    """How many positions the model's own position table holds, and its module name (None: no table)."""
    family = model.config.model_type
    inner = _parts(model)[0]
    if family in ("gpt2", "gpt_bigcode"):
        return int(inner.wpe.num_embeddings), "transformer.wpe"
    if family == "opt":
        table = inner.embed_positions
        return int(table.num_embeddings - table.offset), "model.decoder.embed_positions"
    if family in ("gptj", "codegen"):
        return int(inner.rotary_emb.embed_positions.shape[0]), "transformer.rotary_emb"
    if family == "mpt":  # transformers builds its ALiBi table for max_seq_len keys and slices it
        return int(model.config.max_seq_len), "config.max_seq_len"
    return None


def check_positions(model: Any, max_context: int) -> None:
    """Refuse a cache longer than the model's learned / tabulated positions (an index past the table would
    fail, or wrap on a device, instead of extrapolating)."""
    from devicefit.errors import InputError

    limit = _position_limit(model)
    if limit is not None and max_context > limit[0]:
        raise InputError(
            f"--max-context {max_context} exceeds the {limit[0]} positions of this {model.config.model_type} "
            f"model's position table ({limit[1]}); use --max-context <= {limit[0]}"
        )


class ClassicCausalLM(StatefulCausalLM):
    """:class:`StatefulCausalLM` for the classic families (same inputs, output, cache buffers and sessions)."""

    rope_cos: torch.Tensor
    rope_sin: torch.Tensor
    position_ids: torch.Tensor
    alibi: torch.Tensor
    alibi_slopes: torch.Tensor

    def __init__(self, model: Any, max_context: int, round_cache_fp16: bool = False):
        nn.Module.__init__(self)
        check_positions(model, max_context)
        self.shape = classic_shape(model)
        self.hf = model
        self.max_context = max_context
        self.round_cache_fp16 = round_cache_fp16
        self.windows = [None] * self.shape.num_layers
        family, config = self.shape.family, model.config
        inner, layers, _ = _parts(model)
        # int32: exact in an fp16 package past 2048 (lm_wrapper.StatefulCausalLM.positions)
        self.register_buffer("positions", torch.arange(max_context, dtype=torch.int32), persistent=False)
        self.register_buffer("position_ids", torch.arange(max_context)[None], persistent=False)
        self.rotate = fam.rotate_half
        if family in ("gpt_neox", "falcon") and self.shape.rotary_dim:
            ((cos, sin),) = fam.rope_tables(inner, self.shape.hidden_size, max_context).values()
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        elif family in ("gptj", "codegen"):
            # GPT-J's (CodeGen's) own sinusoid table, as its attention expands it: each frequency serves dims 2i and 2i + 1
            with torch.no_grad():
                sin, cos = inner.rotary_emb(torch.zeros(1), self.position_ids)
            self.register_buffer("rope_cos", cos[0].repeat_interleave(2, -1).float(), persistent=False)
            self.register_buffer("rope_sin", sin[0].repeat_interleave(2, -1).float(), persistent=False)
            self.rotate = fam.rotate_interleaved
        if family == "bloom":
            from transformers.models.bloom.modeling_bloom import bloom_gelu_forward

            self.bloom_gelu = bloom_gelu_forward
        if family == "bloom" or (family == "falcon" and config.alibi):
            self._init_alibi(model, inner, max_context)
        if family == "mpt":
            self._init_mpt_alibi(inner)
        self.scalings = [self._scaling(_attn(layer)) for layer in layers]
        cache = self.shape.cache_shape(max_context)
        self.register_buffer("k_cache", torch.zeros(cache))
        self.register_buffer("v_cache", torch.zeros(cache))

    def _init_alibi(self, model: Any, inner: Any, max_context: int) -> None:
        """ALiBi: slope(head) x key position, from the model's own ``build_alibi_tensor`` (Falcon's rounds in
        bfloat16). Without padding the bias depends on the key only, so one (heads, 1, max_context) table,
        sliced to the keys in view, is exact for a static cache (softmax ignores a per-row shift). BLOOM's
        float32 slopes are kept instead and applied relative to the newest key (``alibi_slopes``, as MPT's)."""
        import importlib
        import math

        family, heads = self.shape.family, self.shape.num_heads
        build = importlib.import_module(f"transformers.models.{family}.modeling_{family}").build_alibi_tensor
        if family == "bloom":
            # BLOOM's table is slope x position in float32: computed per step relative to the newest key, as MPT's,
            # the biases of nearby keys stay small multiples of the slope that fp16 holds; a table's entries past a
            # few hundred positions lose whole fractions of a logit as fp16 constants
            with torch.no_grad():
                ramp = build(torch.ones(1, 2, dtype=torch.long), heads, torch.float32)  # [0, slope] per head
            self.register_buffer("alibi_slopes", ramp[:, :, 1:].float(), persistent=False)
            return
        with torch.no_grad():
            alibi = build(torch.ones(1, max_context, dtype=torch.long), heads, torch.float32)
        if family == "falcon":
            # Falcon adds alibi / sqrt(head dim) to the scaled scores (its sdpa path); its eager path adds the
            # biased mask on top of scores that already hold alibi x the same factor: twice the bias
            twice = getattr(model.config, "_attn_implementation", None) == "eager"
            alibi = alibi * ((2.0 if twice else 1.0) / math.sqrt(self.shape.head_dim))
        self.register_buffer("alibi", alibi.reshape(heads, 1, max_context).float(), persistent=False)

    def _init_mpt_alibi(self, inner: Any) -> None:
        """MPT's ALiBi slopes, from the model's own table builder (its slopes differ from BLOOM's). transformers
        slices a (heads, max_seq_len, max_seq_len) table so that the newest key's bias is 0 and older keys' are
        -distance x slope; the wrapper computes that per step from the slopes (``alibi_slopes``), so the biases of
        nearby keys stay small numbers that fp16 holds exactly, instead of a table offset by the cache length."""
        heads = self.shape.num_heads
        with torch.no_grad():
            ramp = inner.build_mpt_alibi_tensor(heads, 2)  # (heads, 1, 2): [-slope, 0]
        self.register_buffer("alibi_slopes", -ramp[:, :, :1].float(), persistent=False)

    def _scaling(self, attn: Any) -> float:
        for name in ("scaling", "inv_norm_factor", "softmax_scale"):
            if hasattr(attn, name):
                return float(getattr(attn, name))
        return float(self.shape.head_dim**-0.5)

    def _qkv(self, attn: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Projections as (1, seq, heads, head dim), split as each family's attention splits them."""
        s, family = self.shape, self.shape.family
        seq = x.shape[1]
        if family == "gpt2":  # one Conv1D: [q | k | v] along the features
            q, k, v = attn.c_attn(x).split(s.hidden_size, dim=2)
        elif (
            family == "gpt_bigcode" and s.num_kv_heads < s.num_heads
        ):  # multi-query: [q | k | v] of 1 kv head
            kv = s.num_kv_heads * s.head_dim
            q, k, v = attn.c_attn(x).split((s.hidden_size, kv, kv), dim=2)
        elif family == "gpt_bigcode":  # per head: [q_h | k_h | v_h]
            q, k, v = attn.c_attn(x).view(1, seq, s.num_heads, 3 * s.head_dim).split(s.head_dim, dim=-1)
        elif family == "gpt_neox":  # per head: [q_h | k_h | v_h]
            q, k, v = attn.query_key_value(x).view(1, seq, s.num_heads, 3 * s.head_dim).chunk(3, dim=-1)
        elif family == "bloom" or (
            family == "falcon" and not attn.multi_query and not attn.new_decoder_architecture
        ):
            fused = attn.query_key_value(x).view(1, seq, s.num_heads, 3, s.head_dim)
            q, k, v = fused[..., 0, :], fused[..., 1, :], fused[..., 2, :]
        elif family == "falcon":  # per kv group: [q_1 .. q_rep | k | v] (multi-query: one group)
            rep = s.num_heads // s.num_kv_heads
            fused = attn.query_key_value(x).view(1, seq, s.num_kv_heads, rep + 2, s.head_dim)
            q = fused[:, :, :, :rep].reshape(1, seq, s.num_heads, s.head_dim)
            k, v = fused[:, :, :, rep], fused[:, :, :, rep + 1]
        elif family == "mpt":  # [q | k | v] along the features, optionally clipped
            fused = attn.Wqkv(x)
            if attn.clip_qkv:
                fused = fused.clamp(min=-attn.clip_qkv, max=attn.clip_qkv)
            q, k, v = fused.chunk(3, dim=2)
        elif (
            family == "codegen"
        ):  # mp_num groups of [q | v | k] (its model-parallel layout), heads within each
            local = s.hidden_size // attn.mp_num
            fused = attn.qkv_proj(x).view(1, seq, attn.mp_num, 3 * local)
            q, v, k = fused.split(local, dim=-1)
        else:  # OPT, GPT-J: separate projections
            q, k, v = attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
        q = q.reshape(1, seq, s.num_heads, s.head_dim)
        return q, k.reshape(1, seq, s.num_kv_heads, s.head_dim), v.reshape(1, seq, s.num_kv_heads, s.head_dim)

    def _classic_attention(self, i: int, attn: Any, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The heads' outputs (1, seq, hidden) before the output projection."""
        end = mask.shape[-1]
        past = end - x.shape[1]
        q, k, v = (t.transpose(1, 2) for t in self._qkv(attn, x))
        scaling = self.scalings[i]
        if self.shape.family == "opt":  # OPT scales the query before the product (same rounding order)
            q, scaling = q * scaling, 1.0
        r = self.shape.rotary_dim
        if r:
            cos, sin = self.rope_cos[past:end][None, None], self.rope_sin[past:end][None, None]
            q = torch.cat((q[..., :r] * cos + self.rotate(q[..., :r]) * sin, q[..., r:]), dim=-1)
            k = torch.cat((k[..., :r] * cos + self.rotate(k[..., :r]) * sin, k[..., r:]), dim=-1)
        bias = self.alibi[:, :, :end] if hasattr(self, "alibi") else None
        if hasattr(self, "alibi_slopes"):  # MPT, BLOOM: -distance from the newest key x slope
            # the distance in int32, then float: nearby keys' distances are small and exact in fp16
            bias = self.alibi_slopes * (self.positions[:end] - (end - 1)).float()
        return self._attend(i, q, k, v, mask, scaling, bias=bias)

    def _embed(self, input_ids: torch.Tensor, past: Any, end: Any) -> torch.Tensor:
        family = self.shape.family
        inner = _parts(self.hf)[0]
        positions = self.position_ids[:, past:end]
        if family in ("gpt2", "gpt_bigcode"):
            return inner.wte(input_ids) + inner.wpe(positions)
        if family in ("gptj", "codegen", "mpt"):
            return inner.wte(input_ids)
        if family == "opt":  # its own table adds OPT's offset of 2
            h = inner.embed_tokens(input_ids)
            h = inner.project_in(h) if inner.project_in is not None else h
            return h + inner.embed_positions(None, 0, position_ids=positions)
        if family == "gpt_neox":
            return inner.embed_in(input_ids)
        if family == "bloom":
            return inner.word_embeddings_layernorm(inner.word_embeddings(input_ids))
        return inner.word_embeddings(input_ids)

    def _layer(self, i: int, layer: Any, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        family = self.shape.family
        attn = _attn(layer)
        if family in ("gpt2", "gpt_bigcode"):
            h = h + attn.c_proj(self._classic_attention(i, attn, layer.ln_1(h), mask))
            return h + layer.mlp(layer.ln_2(h))
        if family == "mpt":  # its MLP module adds the residual itself
            h = h + attn.out_proj(self._classic_attention(i, attn, layer.norm_1(h), mask))
            return layer.ffn(layer.norm_2(h), h)
        if family in ("gptj", "codegen"):  # attention and MLP both read ln_1's output
            normed = layer.ln_1(h)
            return h + attn.out_proj(self._classic_attention(i, attn, normed, mask)) + layer.mlp(normed)
        if family == "gpt_neox":
            out = attn.dense(self._classic_attention(i, attn, layer.input_layernorm(h), mask))
            if layer.use_parallel_residual:
                return h + out + layer.mlp(layer.post_attention_layernorm(h))
            h = h + out
            return h + layer.mlp(layer.post_attention_layernorm(h))
        if family == "opt":
            return self._opt_layer(i, layer, h, mask)
        if family == "bloom":
            return self._bloom_layer(i, layer, h, mask)
        return self._falcon_layer(i, layer, h, mask)

    def _opt_layer(self, i: int, layer: Any, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pre = layer.do_layer_norm_before  # False (OPT-350m): the norms follow each residual add
        attn = layer.self_attn
        x = layer.self_attn_layer_norm(h) if pre else h
        h = h + attn.out_proj(self._classic_attention(i, attn, x, mask))
        h = h if pre else layer.self_attn_layer_norm(h)
        x = layer.final_layer_norm(h) if pre else h
        h = h + layer.fc2(layer.activation_fn(layer.fc1(x)))
        return h if pre else layer.final_layer_norm(h)

    def _bloom_layer(self, i: int, layer: Any, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        post = (
            layer.apply_residual_connection_post_layernorm
        )  # the residual is the norm's output, not its input
        attn = layer.self_attention
        normed = layer.input_layernorm(h)
        h = attn.dense(self._classic_attention(i, attn, normed, mask)) + (normed if post else h)
        normed = layer.post_attention_layernorm(h)
        mlp = layer.mlp
        # NOTE: BloomGelu wraps its tanh-gelu in a torch.autograd.Function, which tracing keeps as an opaque
        # PythonOp that coremltools cannot convert; the module's own forward function is called instead
        return mlp.dense_4h_to_h(self.bloom_gelu(mlp.dense_h_to_4h(normed))) + (normed if post else h)

    def _falcon_layer(self, i: int, layer: Any, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        config = self.hf.config
        attn = layer.self_attention
        # the new decoder architecture (Falcon-40B and later) gives attention and MLP a norm each
        two_norms = config.new_decoder_architecture and config.num_ln_in_parallel_attn == 2
        a_in = layer.ln_attn(h) if two_norms else layer.input_layernorm(h)
        out = attn.dense(self._classic_attention(i, attn, a_in, mask))
        if two_norms:
            return layer.mlp(layer.ln_mlp(h)) + out + h
        if config.parallel_attn or config.new_decoder_architecture:
            return layer.mlp(a_in) + out + h
        h = out + h
        return layer.mlp(layer.post_attention_layernorm(h)) + h

    def forward(self, input_ids: torch.Tensor, causal_mask: torch.Tensor) -> torch.Tensor:
        end = causal_mask.shape[-1]
        past = end - input_ids.shape[1]
        _, layers, final_norm = _parts(self.hf)
        h = self._embed(input_ids, past, end)
        for i, layer in enumerate(layers):
            h = self._layer(i, layer, h, causal_mask)
        h = final_norm(h) if final_norm is not None else h
        project_out = getattr(_parts(self.hf)[0], "project_out", None)  # OPT with word_embed_proj_dim
        h = project_out(h) if project_out is not None else h
        return self.hf.get_output_embeddings()(h)
