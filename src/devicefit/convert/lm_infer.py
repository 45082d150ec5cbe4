"""Causal-LM families the stateful wrapper was not written for, covered when they provably fit it.

transformers gains LLaMA-shaped decoder families every release (OLMo, Nemotron, Helium, Arcee, ERNIE 4.5,
EXAONE 4, Seed-OSS, ...) whose modules carry LLaMA's names. Rather than refuse every family not listed in
:data:`~devicefit.convert.lm_families.SUPPORTED_FAMILIES`, such a model is covered when

1. its modules have the names the wrapper reads (``model.layers[i].self_attn.q_proj`` ..., ``rotary_emb``,
   ``embed_tokens``, ``norm``, ``lm_head``), the decoder-layer layout read off which norms a layer has; and
2. the wrapper, so wired, reproduces the model's own logits: a probe sequence run as a prompt then token by
   token through the wrapper's KV cache, against transformers' forward over the whole sequence, with the
   model's own weights. Each rotary pairing (LLaMA's halves, Cohere's interleaved pairs, LLaMA's tables with their
   first half interleaved) is tried, and rotary on the sliding-window layers only where a model has both kinds.

Anything the family computes that the wrapper does not (clipped q/k/v, another mask, a scaled residual) shows
as a logit difference, and the family is refused with that figure instead of converted wrong. The verdict is
kept per model object, so the probe runs once per model.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from devicefit.convert import lm_families as fam

# a wiring reproduces the model when its logits differ by at most this, relative to the largest logit: fp32
# summation order gives ~1e-6; a computation the wrapper lacks gives 1e-2 and up
PROBE_RTOL = 1e-3
PROBE_PROMPT = 5  # tokens fed as the prompt, then PROBE_DECODE one at a time through the cache
PROBE_DECODE = 3
ROTATIONS = ("half", "interleaved", "interleaved_halves", "half_doubled")


# (norm before attention, after attention, before the MLP, after the MLP): module names, None where absent
Roles = tuple[str | None, str | None, str | None, str | None]

# a decoder layer's set of norm modules -> (layout, the role of each); a set not listed is refused
NORM_ROLES: dict[frozenset[str], tuple[str, Roles]] = {
    frozenset({"input_layernorm", "post_attention_layernorm"}): (
        "sequential", ("input_layernorm", None, "post_attention_layernorm", None)),
    frozenset({"input_layernorm", "pre_feedforward_layernorm"}): (  # VaultGemma
        "sequential", ("input_layernorm", None, "pre_feedforward_layernorm", None)),
    frozenset({"attention_layernorm", "feedforward_layernorm"}): (  # Apertus
        "sequential", ("attention_layernorm", None, "feedforward_layernorm", None)),
    frozenset({"input_layernorm"}): ("parallel", ("input_layernorm", None, "input_layernorm", None)),
    frozenset({"post_attention_layernorm", "post_feedforward_layernorm"}): (
        "post_norm", (None, "post_attention_layernorm", None, "post_feedforward_layernorm")),
    frozenset({"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
               "post_feedforward_layernorm"}): (  # Gemma 2 / 3
        "sandwich", ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                     "post_feedforward_layernorm")),
    frozenset({"input_layernorm", "post_self_attn_layernorm", "post_attention_layernorm", "post_mlp_layernorm"}): (
        "sandwich", ("input_layernorm", "post_self_attn_layernorm", "post_attention_layernorm",  # GLM-4
                     "post_mlp_layernorm")),
    frozenset({"input_layernorm", "post_attention_layernorm", "pre_mlp_layernorm", "post_mlp_layernorm"}): (
        "sandwich", ("input_layernorm", "post_attention_layernorm", "pre_mlp_layernorm",  # AFMoE
                     "post_mlp_layernorm")),
}  # fmt: skip


@dataclass(frozen=True)
class Wiring:
    """How the wrapper runs a family it was not written for: the decoder-layer layout, which norm module plays
    each role, the rotary pairing, and whether only the sliding-window layers rotate (Cohere 2's global layers
    are NoPE); ``probe_error``: the verifying probe's largest logit difference, relative to its largest logit."""

    layout: str
    roles: Roles
    rotation: str = "half"
    rope_windowed_only: bool = False
    probe_error: float = 0.0


_VERDICTS: weakref.WeakKeyDictionary[Any, Wiring | str] = weakref.WeakKeyDictionary()


def layout_of(model: Any) -> tuple[str, Roles]:
    """The decoder-layer layout read off a LLaMA-named model's first layer (its name and which norm module
    plays each role), or raise ValueError saying which module the wrapper needs and the model lacks."""
    inner: Any = getattr(model, "model", None)
    for path in ("lm_head", "model.embed_tokens", "model.layers", "model.rotary_emb"):
        owner = model if path == "lm_head" else inner
        if owner is None or not hasattr(owner, path.rsplit(".", 1)[-1]):
            raise ValueError(f"it has no {path} (the wrapper reads LLaMA's module names)")
    if not (hasattr(inner, "norm") or hasattr(inner, "final_layernorm")):
        raise ValueError("it has no final norm (model.norm)")
    layer = inner.layers[0]
    attn = getattr(layer, "self_attn", None)
    if attn is None or not hasattr(layer, "mlp"):
        raise ValueError("its decoder layers have no self_attn / mlp")
    projections = hasattr(attn, "qkv_proj") or all(hasattr(attn, p) for p in ("q_proj", "k_proj", "v_proj"))
    if not projections or not (hasattr(attn, "o_proj") or hasattr(attn, "dense")):
        raise ValueError("its attention has no q_proj / k_proj / v_proj / o_proj")
    if not isinstance(getattr(attn, "scaling", None), float | int):
        raise ValueError("its attention has no scaling factor")
    for i, each in enumerate(inner.layers):
        mlp = getattr(each, "mlp", None)
        if hasattr(mlp, "experts") and not fam.is_moe(mlp):
            # NOTE: tracing would freeze its token dispatch (nonzero / index_add loops) to the probe's routing
            raise ValueError(f"its mixture of experts model.layers.{i}.mlp has no gate / router module")
    # every norm module of the layer (by name), so that one the wrapper would not call is a refusal, not a
    # silently skipped norm
    norms = _norms(layer)
    for i, each in enumerate(inner.layers):
        if _norms(each) != norms:
            raise ValueError(f"model.layers.{i} has norms {sorted(_norms(each))}, layer 0 {sorted(norms)}")
    if norms in NORM_ROLES:
        return NORM_ROLES[norms]
    raise ValueError(f"its decoder layers have norms {sorted(norms)}, none of the layouts the wrapper runs")


def _norms(layer: Any) -> frozenset[str]:
    return frozenset(
        name for name, child in layer.named_children() if child is not None and "norm" in name.lower()
    )


def verified_wiring(model: Any) -> Wiring | str:
    """The wiring that reproduces ``model``'s logits, or why there is none (a one-line reason)."""
    try:
        return _VERDICTS[model]
    except (KeyError, TypeError):
        pass
    verdict = _verify(model)
    try:
        _VERDICTS[model] = verdict
    except TypeError:  # not weak-referenceable: verified again next time
        pass
    return verdict


def _verify(model: Any) -> Wiring | str:
    import torch

    from devicefit.convert.lm_wrapper import StatefulCausalLM, causal_mask
    from devicefit.errors import InputError, first_line

    try:
        layout, roles = layout_of(model)
    except ValueError as e:
        return f"its modules do not follow LLaMA's layout: {e}"
    config = model.config
    total = PROBE_PROMPT + PROBE_DECODE
    vocab = int(getattr(config, "vocab_size", 0) or 0)
    if vocab < 2:
        return "its config has no vocab_size"
    ids = torch.randint(0, vocab, (1, total), generator=torch.Generator().manual_seed(0))
    worst: list[str] = []
    try:
        with torch.no_grad():
            expected = model(ids).logits.float()
    except Exception as e:  # the model's own forward: nothing to compare against
        return f"its own forward failed on a probe sequence ({first_line(e)})"
    scale = float(expected.abs().max()) or 1.0
    windows = [fam.sliding_window(config, layer.self_attn, i) for i, layer in enumerate(model.model.layers)]
    mixed = any(w is None for w in windows) and any(w is not None for w in windows)
    for rotation, windowed_only in [(r, False) for r in ROTATIONS] + [(r, True) for r in ROTATIONS if mixed]:
        wiring = Wiring(layout, roles, rotation, windowed_only)
        label = f"{rotation} rotary pairing" + (" on the sliding-window layers only" if windowed_only else "")
        try:
            with torch.no_grad():
                wrapper = StatefulCausalLM(model, max_context=total, wiring=wiring)
                parts = [wrapper(ids[:, :PROBE_PROMPT], causal_mask(PROBE_PROMPT, PROBE_PROMPT))]
                for pos in range(PROBE_PROMPT, total):
                    parts.append(wrapper(ids[:, pos : pos + 1], causal_mask(1, pos + 1)))
            got = torch.cat(parts, dim=1).float()
        except InputError as e:  # a refusal of the wrapper's own (an expert layout it does not map)
            return str(e)
        except Exception as e:
            worst.append(f"{label} failed: {type(e).__name__}: {first_line(e)}")
            continue
        if got.shape != expected.shape:
            worst.append(f"{label} gave logits of shape {tuple(got.shape)}")
            continue
        error = float((got - expected).abs().max()) / scale
        if error <= PROBE_RTOL:
            return Wiring(layout, roles, rotation, windowed_only, error)
        worst.append(f"{label} {error:.2g}")
    return (
        f"its modules follow LLaMA's {layout} layout, but the wrapper does not reproduce its logits on a "
        f"probe sequence (largest difference relative to the largest logit: {'; '.join(worst)}; at most "
        f"{PROBE_RTOL:g} passes): the family computes something the wrapper does not"
    )
