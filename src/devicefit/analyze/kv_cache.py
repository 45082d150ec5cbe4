"""Memory and decode-speed bounds of an on-device language model: weights + KV cache + activations.

Decode produces one token per forward pass and is memory-bound on every Apple chip: each token reads every
weight once and the KV cache up to the current position. So ``bandwidth / bytes per token`` is an *upper
bound* on tokens/s (real decode also pays compute, launch overheads and cache misses). Bytes per token are
counted at the full context (the worst case a session reaches), which keeps the bound honest for long chats.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["LMMemory", "SizeRung", "lm_memory", "size_ladder", "tokens_per_s_bound"]

# bits per weight of each rung, with per-block / per-group overheads: int4 per-block keeps one fp16 scale per
# 32 weights (+0.5 bit); 4/3-bit palettization one 16/8-entry fp16 lookup table per group of 32 output rows
# (negligible per weight at these widths).
_LADDER: tuple[tuple[str, float], ...] = (
    ("fp32", 32.0),
    ("fp16", 16.0),
    ("int8", 8.0),
    ("int4-block32", 4.5),
    ("palettize-4bit", 4.0),
    ("palettize-3bit", 3.0),
)


@dataclass
class SizeRung:
    """One rung of the size ladder: a storage format and the weight bytes it gives."""

    name: str
    bits_per_weight: float
    weight_bytes: int


@dataclass
class DeviceFit:
    """One device: does weights + cache + activations fit its app memory budget, and the tokens/s bound.

    ``fits`` / ``tokens_per_s_bound`` are None where the catalog lacks the budget / bandwidth figure.
    """

    device: str
    budget_mb: float | None
    fits: bool | None
    bandwidth_gbps: float | None
    tokens_per_s_bound: float | None


@dataclass
class LMMemory:
    """Memory of a stateful LM at ``context`` tokens, and per-device fit and decode bound.

    Attributes:
        weight_bytes: bytes of the weights as shipped (the package's weight file).
        kv_cache_bytes: every state, fp16 (Core ML states are fp16), at ``context``: both cache states, and a
            hybrid's convolution state (LFM2).
        kv_cache_per_layer_bytes: one attention layer's keys + values (latent attention: its latent + rotated
            shared key).
        decode_activation_bytes: live activations of one decode step (estimate, see :func:`lm_memory`).
        prefill_activation_bytes: the same for a prompt of ``context`` tokens (attention scores dominate).
        bytes_per_token: bytes one decode step reads at full context (weights + whole cache).
        devices: per device fit and tokens/s upper bound.
        ladder: weight bytes at each storage format.
        partial: True when some device lacks a budget or bandwidth figure.
    """

    context: int
    weight_bytes: int
    kv_cache_bytes: int
    kv_cache_per_layer_bytes: int
    decode_activation_bytes: int
    prefill_activation_bytes: int
    bytes_per_token: int
    devices: list[DeviceFit] = field(default_factory=list)
    ladder: list[SizeRung] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        """Weights + cache + the larger of the prefill / decode activations."""
        return (
            self.weight_bytes
            + self.kv_cache_bytes
            + max(self.decode_activation_bytes, self.prefill_activation_bytes)
        )

    @property
    def partial(self) -> bool:
        """True when some device lacks the figure a bound or fit needs."""
        return any(d.fits is None or d.tokens_per_s_bound is None for d in self.devices)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict."""
        d = asdict(self)
        d["total_bytes"] = self.total_bytes
        d["partial"] = self.partial
        return d


def tokens_per_s_bound(bandwidth_gbps: float | None, bytes_per_token: int) -> float | None:
    """Decode tokens/s upper bound: memory bandwidth / bytes read per token (None without a bandwidth)."""
    return None if not bandwidth_gbps or bytes_per_token <= 0 else bandwidth_gbps * 1e9 / bytes_per_token


def size_ladder(parameters: int) -> list[SizeRung]:
    """Weight bytes of ``parameters`` weights at each storage format (fp32 down to 3-bit palettized)."""
    return [SizeRung(name, bits, int(parameters * bits / 8)) for name, bits in _LADDER]


def lm_memory(
    shape: Any,
    context: int,
    weight_bytes: int,
    parameters: int,
    intermediate_size: int,
    devices: list[Any] | None = None,
    activation_bytes_per_element: int = 2,
    mlp_elements_per_token: int | None = None,
) -> LMMemory:
    """Memory and decode bound of a causal LM with geometry ``shape`` (an ``LMShape``).

    Activation estimate (live at once in the largest layer): the attention scores (heads x seq x context),
    the MLP's intermediate (seq x ``mlp_elements_per_token``: gate + up of the widest layer's MLP, every expert's
    for a mixture computed densely), the logits (seq x vocab, fp32) and four hidden-sized tensors (residual,
    normed, q, attention output), for seq = 1 (decode) or ``context`` (prefill).

    Args:
        shape: the model geometry (``devicefit.convert.lm_wrapper.LMShape``).
        context: tokens in the cache (the ``--max-context``).
        weight_bytes: the shipped weight bytes.
        parameters: the weight count (for the size ladder).
        intermediate_size: the MLP width.
        devices: catalog devices (``devicefit.analyze.catalog.Device``); default the whole catalog.
        activation_bytes_per_element: 2 for fp16 compute, 4 for fp32.
        mlp_elements_per_token: the widest MLP intermediate per token, as the package computes it
            (``devicefit.convert.lm_families.mlp_elements_per_token``); default 2 x ``intermediate_size``.
    """
    from devicefit.analyze.catalog import load_catalog

    # keys + values of every kv head, or a latent-attention model's latent + rotated key (LMShape.cache_shapes);
    # a hybrid caches its attention layers only, and adds its convolution layers' state
    per_layer = shape.cache_bytes_per_layer(context)
    cache = shape.state_bytes(context)

    mlp = mlp_elements_per_token or 2 * intermediate_size

    def activations(seq: int) -> int:
        elems = shape.num_heads * seq * context + seq * mlp + 4 * seq * shape.hidden_size
        return elems * activation_bytes_per_element + seq * shape.vocab_size * 4

    decode_act, prefill_act = activations(1), activations(context)
    per_token = weight_bytes + cache
    result = LMMemory(
        context=context,
        weight_bytes=weight_bytes,
        kv_cache_bytes=cache,
        kv_cache_per_layer_bytes=per_layer,
        decode_activation_bytes=decode_act,
        prefill_activation_bytes=prefill_act,
        bytes_per_token=per_token,
        ladder=size_ladder(parameters),
    )
    total_mb = result.total_bytes / 2**20
    for dev in devices if devices is not None else load_catalog():
        budget, bw = dev.app_memory_budget_mb, dev.mem_bandwidth_gbps
        result.devices.append(
            DeviceFit(
                device=dev.id,
                budget_mb=budget,
                fits=None if budget is None else total_mb <= budget,
                bandwidth_gbps=bw,
                tokens_per_s_bound=tokens_per_s_bound(bw, per_token),
            )
        )
    return result
