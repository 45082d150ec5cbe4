"""What differs between the causal-LM families the stateful wrapper covers, read off each model.

The wrapper (:mod:`devicefit.convert.lm_wrapper`) reuses a model's own modules; this module says how they are
wired: the residual layout of a decoder layer, where q/k normalisation sits, how the rotary embedding pairs
dimensions, which scalars (embedding / residual multipliers, logit scaling and soft-capping) the family's
forward applies, per-layer sliding windows and rotary tables, and a dense form of mixture-of-experts routing.
"""

from __future__ import annotations

from typing import Any

import torch

# model_type -> decoder-layer layout:
# "sequential": x + attn(norm1(x)), then + mlp(norm2(.)) (LLaMA);
# "parallel": x + attn(norm(x)) + mlp(norm(x)) (Phi, Cohere);
# "post_norm": x + norm1(attn(x)), then + norm2(mlp(.)) (OLMo 2);
# "sandwich": x + norm2(attn(norm1(x))), then + norm4(mlp(norm3(.))) (Gemma 2 / 3).
SUPPORTED_FAMILIES: dict[str, str] = {
    "llama": "sequential",
    "qwen2": "sequential",
    "qwen3": "sequential",
    "mistral": "sequential",
    "gemma": "sequential",
    "gemma2": "sandwich",
    "gemma3_text": "sandwich",
    "phi": "parallel",
    "phi3": "sequential",
    "olmo2": "post_norm",
    "stablelm": "sequential",  # or parallel: the model's use_parallel_residual decides
    "granite": "sequential",
    "smollm3": "sequential",
    "cohere": "parallel",
    "starcoder2": "sequential",
    "mixtral": "sequential",
    "qwen2_moe": "sequential",
    "qwen3_moe": "sequential",
    # latent attention (MLA, convert/lm_mla.py) with DeepSeek's mixtures of experts
    "deepseek_v2": "sequential",
    "deepseek_v3": "sequential",
    # chunked local attention on the rotary layers, NoPE global layers with attention temperature tuning, L2 q/k
    # norm, a top-1 sigmoid mixture of experts with a shared expert every interleave_moe_layer_step layers
    "llama4_text": "sequential",
    # the classic GPT-style families (convert/lm_classic.py); some layouts are read per model there
    "gpt2": "sequential",
    "gpt_bigcode": "sequential",
    "gpt_neox": "parallel",  # or sequential: use_parallel_residual decides
    "opt": "sequential",  # or post_norm: do_layer_norm_before decides
    "gptj": "parallel",
    "codegen": "parallel",
    "falcon": "parallel",  # or sequential: parallel_attn / new_decoder_architecture decide
    "bloom": "sequential",
    "mpt": "sequential",
    # attention layers between gated short-convolution layers with a convolution state (convert/lm_hybrid.py);
    # LFM2-MoE: the same, its later layers' MLPs a sigmoid mixture of experts with an expert bias
    "lfm2": "short_conv",
    "lfm2_moe": "short_conv",
}

# families whose module layout is not LLaMA's: wrapped by lm_classic.ClassicCausalLM
CLASSIC_FAMILIES = frozenset(
    {"gpt2", "gpt_bigcode", "gpt_neox", "opt", "gptj", "codegen", "falcon", "bloom", "mpt"}
)


def _hybrid(layers: str, state: str) -> str:
    return (
        f"a hybrid: {layers}, whose layers carry {state} between tokens beside the attention KV cache; the "
        "conversion's cache states hold keys and values only"
    )


# Families seen in transformers that this wrapper deliberately does not cover, and why (shown to the user).
UNSUPPORTED_REASONS: dict[str, str] = {
    "gemma3": (
        "this is the multimodal Gemma 3 (vision tower); load its text model (Gemma3ForCausalLM, model_type "
        "gemma3_text) to convert the language model"
    ),
    "llama4": (
        "this is the multimodal Llama 4 (vision tower); load its language model (Llama4ForCausalLM, model_type "
        "llama4_text) to convert the language model"
    ),
    "gemma3n": "this is the multimodal Gemma 3n; its language model (gemma3n_text) is not covered either",
    "gemma3n_text": (
        "Gemma 3n's layers add AltUp's predicted / corrected parallel streams, LAuReL's low-rank residual, "
        "per-layer embeddings and keys / values shared across layers: a layer the wrapper does not run"
    ),
    "falcon_h1": _hybrid("Mamba-2 heads in parallel with attention", "an SSM and a convolution state"),
    **dict.fromkeys(
        ("jamba", "bamba", "zamba", "zamba2", "nemotron_h", "granitemoehybrid"),
        _hybrid("Mamba layers between the attention layers", "an SSM and a convolution state"),
    ),
    "qwen3_next": _hybrid("Gated DeltaNet linear-attention layers", "a recurrent state"),
    "kimi_linear": _hybrid("Kimi Delta Attention layers", "a recurrent state"),
    **dict.fromkeys(
        ("mamba", "mamba2", "falcon_mamba", "rwkv", "xlstm", "recurrent_gemma"),
        "a recurrent model: its layers carry a recurrent state between tokens, not an attention KV cache",
    ),
    "deepseek_v32": (
        "DeepSeek sparse attention: a learned indexer picks the cached tokens each query attends to (its own top-k "
        "over its own key cache), which the latent cache of DeepSeek-V2 / V3 does not compute"
    ),
    "longcat_flash": (
        "two latent attentions and two MLPs per decoder layer, with zero-computation experts: a layer layout the "
        "wrapper does not run"
    ),
}


# rotary pairing of the families written for that do not use LLaMA's halves (see LMShape.rotation): Llama 4's
# rotary module returns complex rotations of pairs 2i / 2i + 1, split into LLaMA-layout tables by _squeeze
ROTATION = {"cohere": "interleaved", "llama4_text": "interleaved_halves"}

# families whose layers carry a convolution state beside the KV cache: wrapped by lm_hybrid.ShortConvCausalLM
HYBRID_FAMILIES = frozenset({"lfm2", "lfm2_moe"})

# mixture-of-experts blocks whose own forward already runs every expert on every token (no data-dependent
# dispatch that tracing would freeze): called as they are. Llama 4 scales each expert's *input* by its router
# score, which the dense sum of dense_moe (scaling outputs) would not reproduce.
DENSE_MOE_BLOCKS = frozenset({"Llama4TextMoe"})


def mlp_of(layer: Any) -> Any:
    """A decoder layer's MLP / mixture-of-experts module: ``mlp``, or Llama 4's ``feed_forward``."""
    return layer.mlp if hasattr(layer, "mlp") else layer.feed_forward


def mlp_elements_per_token(model: Any) -> int | None:
    """Per token, the elements of the widest MLP intermediate the conversion computes, over the decoder layers.

    A dense MLP: the outputs of its projections from the hidden size (gate + up: 2 x its width; each layer's
    own, so Llama 4's dense layers count ``intermediate_size_mlp``, not the experts' ``intermediate_size``). A
    mixture of experts runs every expert on every token (:func:`dense_moe`, Llama 4's own block): experts x
    each one's gate + up, plus its shared expert. None where the layers are not ``model.model.layers``.
    """
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None:
        return None
    hidden = model.config.hidden_size
    widths = [_mlp_elements(mlp_of(layer), hidden) for layer in layers]
    return max(widths) if widths and all(widths) else None


def _mlp_elements(mlp: Any, hidden: int) -> int:
    experts = getattr(mlp, "experts", None)
    gate_up = getattr(experts, "gate_up_proj", None)
    if (
        isinstance(gate_up, torch.Tensor) and gate_up.ndim == 3
    ):  # (experts, hidden, 2I) or (experts, 2I, hidden)
        count = int(gate_up.shape[0])
        shared = getattr(mlp, "shared_expert", None) or getattr(mlp, "shared_experts", None)
        return count * (gate_up[0].numel() // hidden) + (_mlp_elements(shared, hidden) if shared else 0)
    return sum(
        m.out_features for m in mlp.modules() if isinstance(m, torch.nn.Linear) and m.in_features == hidden
    )


def attention_chunk(config: Any, index: int) -> int | None:
    """The chunk size of layer ``index``'s chunked local attention (Llama 4: a query attends to the keys of its
    own chunk of ``attention_chunk_size`` positions only); None: not chunked."""
    if layer_type(config, index) != "chunked_attention":
        return None
    return getattr(config, "attention_chunk_size", None) or None


def attention_temperature(config: Any, max_context: int) -> torch.Tensor | None:
    """Llama 4's per-position query scale on its NoPE layers (``attn_temperature_tuning``), as its attention
    computes it: ``log1p(floor((p + 1) / floor_scale)) * attn_scale + 1``; None where the model has none."""
    if not getattr(config, "attn_temperature_tuning", False) or not hasattr(config, "floor_scale"):
        return None
    positions = torch.arange(max_context).float()
    return torch.log1p(torch.floor((positions + 1.0) / config.floor_scale)) * config.attn_scale + 1.0


def layout(model: Any, family: str) -> str:
    """The family's decoder-layer layout; StableLM's is chosen per model by ``use_parallel_residual``."""
    if family == "stablelm" and getattr(model.config, "use_parallel_residual", False):
        return "parallel"
    return SUPPORTED_FAMILIES[family]


def rope_tables(
    inner: Any, hidden: int, max_context: int, rotary: Any = None
) -> dict[str | None, tuple[torch.Tensor, torch.Tensor]]:
    """cos / sin tables for positions ``[0, max_context)`` from the model's own rotary module (``rotary``;
    default ``inner.rotary_emb``).

    Keyed by layer type where the module computes one table per type (Gemma 3: local layers use another rope
    base than global ones), else by None. Rope-scaling variants are whatever transformers computes.
    """
    import inspect

    rotary = rotary if rotary is not None else inner.rotary_emb
    _check_longrope(rotary, max_context)
    probe = torch.zeros(1, 1, hidden)
    positions = torch.arange(max_context)[None]
    with torch.no_grad():
        if "layer_type" in inspect.signature(rotary.forward).parameters:
            types = sorted(set(inner.config.layer_types))
            return {t: _squeeze(rotary(probe, positions, t)) for t in types}
        return {None: _squeeze(rotary(probe, positions))}


def _check_longrope(rotary: Any, max_context: int) -> None:
    """Refuse a cache longer than a long-rope model's original context: transformers switches *every*
    position to the long factors once a sequence passes it, which one static table cannot follow."""
    from devicefit.errors import InputError

    params = getattr(rotary.config, "rope_parameters", None) or {}
    if getattr(rotary, "rope_type", None) != "longrope" or not isinstance(params, dict):
        return
    original = params.get("original_max_position_embeddings")
    if isinstance(original, int) and max_context > original:
        raise InputError(
            f"--max-context {max_context} exceeds this long-rope model's original context ({original}): "
            "transformers then re-rotates every position with the long factors, which a static KV cache "
            f"cannot follow; use --max-context <= {original}"
        )


def _squeeze(pair: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(pair, torch.Tensor) and pair.is_complex():
        # DeepSeek-V2: one complex rotation per pair of dims, cos + i sin; as LLaMA-layout tables [f_0..f_n, f_0..f_n]
        cos, sin = pair[0].real.float(), pair[0].imag.float()
        return torch.cat((cos, cos), dim=-1), torch.cat((sin, sin), dim=-1)
    return pair[0][0].float().clone(), pair[1][0].float().clone()


def layer_type(config: Any, index: int) -> str | None:
    types = getattr(config, "layer_types", None)
    return types[index] if types else None


def sliding_window(config: Any, attn: Any, index: int) -> int | None:
    """The window of layer ``index``'s attention (None: full attention).

    Families that alternate local and global layers set ``sliding_window`` on each attention module; the
    others (Mistral, Mixtral, Starcoder2, Phi-3) apply the config's window to every layer.
    """
    if hasattr(attn, "sliding_window"):
        return attn.sliding_window or None
    if not getattr(config, "use_sliding_window", True):
        return None
    return getattr(config, "sliding_window", None) or None


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """LLaMA's pairing: dimension i rotates with i + d/2."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rotate_interleaved(x: torch.Tensor) -> torch.Tensor:
    """Cohere's pairing: dimension 2i rotates with 2i + 1 (its cos/sin tables are interleaved to match)."""
    pairs = x.unflatten(-1, (-1, 2))
    return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)


def interleave_halves(cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """LLaMA-layout tables ``[f_0..f_n, f_0..f_n]`` as interleaved ones ``[f_0, f_0, f_1, f_1, ...]``."""
    half = cos.shape[-1] // 2
    return cos[..., :half].repeat_interleave(2, dim=-1), sin[..., :half].repeat_interleave(2, dim=-1)


def logits_transform(config: Any, family: str, logits: torch.Tensor) -> torch.Tensor:
    """What the family's ``*ForCausalLM.forward`` applies to ``lm_head``'s output."""
    if family == "granite":
        return logits / config.logits_scaling
    scale = getattr(config, "logit_scale", None)
    if family == "cohere" or (family not in SUPPORTED_FAMILIES and isinstance(scale, float)):
        # Cohere, and a family the wrapper was not written for with Cohere's logit_scale (Cohere 2): the probe
        # of convert/lm_infer.py verifies it is applied as Cohere applies it
        return logits * config.logit_scale
    cap = getattr(config, "final_logit_softcapping", None)
    if cap:
        return torch.tanh(logits / cap) * cap
    return logits


def feed_forward(mlp: Any, x: torch.Tensor) -> torch.Tensor:
    """A layer's MLP or mixture of experts on ``x``: sparse ones densely (:func:`dense_moe`)."""
    if type(mlp).__name__ in DENSE_MOE_BLOCKS:
        out = mlp(x)
        return (out[0] if isinstance(out, tuple) else out).reshape(x.shape)
    return dense_moe(mlp, x) if is_moe(mlp) else mlp(x)


def is_moe(mlp: Any) -> bool:
    return hasattr(mlp, "experts") and _router(mlp) is not None


def _router(mlp: Any) -> Any:
    """The module that scores and picks the experts: ``gate`` (Mixtral, Qwen-MoE, OLMoE) or ``router`` (Phi-MoE),
    returning (logits, weights of the picked experts, their indices)."""
    gate = getattr(mlp, "gate", None)
    return gate if gate is not None else getattr(mlp, "router", None)


def _route(mlp: Any, flat: torch.Tensor) -> Any:
    """The router's (logits, weights, indices) for ``flat`` tokens, called as the block calls it: MiniMax-M2's
    router takes the block's score-correction bias as an argument, AFMoE's and LFM2-MoE's their ``expert_bias``.
    AFMoE's reads its input as (batch, tokens, hidden); LFM2-MoE's gathers its picks along dim 1, which is only
    right for (tokens, hidden): the tokens go in flat, and as a batch of one where the router cannot unpack them."""
    import inspect

    router = _router(mlp)
    parameters = inspect.signature(router.forward).parameters
    for name in ("e_score_correction_bias", "expert_bias"):
        bias = getattr(mlp, name, None)
        if bias is not None and name in parameters:
            try:
                return router(flat, bias)
            except ValueError:  # AFMoE: `_, _, hidden = hidden_states.shape`
                return router(flat[None], bias)
    return router(flat)


def check_moe(mlp: Any, where: str) -> None:
    """Refuse an expert layout :func:`dense_moe` does not reproduce, naming the module."""
    from devicefit.errors import InputError

    experts = mlp.experts
    for name in ("gate_up_proj", "down_proj"):
        weight = getattr(experts, name, None)
        if not isinstance(weight, torch.Tensor) or weight.ndim != 3:
            raise InputError(
                f"{where} ({type(experts).__name__}) stores its experts without a 3-D {name} tensor: this expert "
                "layout is not mapped onto the dense routing of the stateful LM conversion"
            )
    if not _gpt_oss_experts(experts) and any(
        hasattr(experts, b) for b in ("gate_up_proj_bias", "down_proj_bias")
    ):
        raise InputError(f"{where} ({type(experts).__name__}): experts with biases are not mapped onto the dense "
                         "routing of the stateful LM conversion")  # fmt: skip


def _gpt_oss_experts(experts: Any) -> bool:
    """gpt-oss's expert layout: inputs first (``x @ gate_up_proj``, (experts, hidden, 2 inter), gate and up
    interleaved), biases on both projections, and its own clamped swiglu (``_apply_gate``)."""
    return all(hasattr(experts, a) for a in ("gate_up_proj_bias", "down_proj_bias", "_apply_gate"))


def dense_moe(mlp: Any, x: torch.Tensor) -> torch.Tensor:
    """A sparse mixture-of-experts block computed densely: every expert runs on every token, and each token
    sums the experts its router picked, weighted as the router weighs them.

    NOTE: transformers dispatches tokens to experts with data-dependent loops (``nonzero``, ``index_add_``)
    that tracing freezes to the example's routing. The model's own router (softmax, top-k, renormalisation)
    still decides; only the dispatch becomes a fixed-shape one-hot sum, exact up to summation order. Compute
    grows by experts / top-k, which is fine for prefill of small models and decode.
    """
    flat = x.reshape(-1, x.shape[-1])
    _, weights, index = _route(mlp, flat)
    experts = mlp.experts
    count = experts.gate_up_proj.shape[0]
    picked = (index[..., None] == torch.arange(count)).to(flat.dtype)  # (tokens, top-k, experts)
    per_expert = (picked * weights[..., None].to(flat.dtype)).sum(dim=1)  # (tokens, experts)
    # NOTE: the expert tensors are matmul operands exactly as stored (no einsum, no transpose): coremltools then
    # keeps their PyTorch names on the constants, which is how compression finds each weight's role
    if _gpt_oss_experts(experts):
        gate_up = torch.matmul(flat[None], experts.gate_up_proj) + experts.gate_up_proj_bias[:, None, :]
        out = (
            torch.matmul(experts._apply_gate(gate_up), experts.down_proj) + experts.down_proj_bias[:, None, :]
        )
        mixed = (out * per_expert.transpose(0, 1)[:, :, None]).sum(dim=0)  # (tokens, hidden)
        return mixed.reshape(x.shape)
    tokens_last = flat.transpose(0, 1)[None]  # (1, hidden, tokens)
    gate, up = torch.matmul(experts.gate_up_proj, tokens_last).chunk(2, dim=1)  # (experts, inter, tokens)
    out = torch.matmul(experts.down_proj, experts.act_fn(gate) * up)  # (experts, hidden, tokens)
    mixed = (out * per_expert.transpose(0, 1)[:, None, :]).sum(dim=0).transpose(0, 1)  # (tokens, hidden)
    if hasattr(mlp, "shared_expert"):  # Qwen2-MoE: an always-on expert behind a sigmoid gate
        mixed = mixed + torch.sigmoid(mlp.shared_expert_gate(flat)) * mlp.shared_expert(flat)
    elif hasattr(mlp, "shared_experts"):  # GLM-4-MoE, DeepSeek style: always-on experts, ungated
        mixed = mixed + mlp.shared_experts(flat)
    return mixed.reshape(x.shape)
