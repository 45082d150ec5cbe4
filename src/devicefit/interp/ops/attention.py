"""Fused attention: iOS18 scaled_dot_product_attention."""

from __future__ import annotations

import math

import torch

from devicefit.interp.registry import register


def _additive_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    # A bool mask says which keys take part; a float mask is added to the scores.
    if mask.dtype == torch.bool:
        return torch.zeros((), dtype=like.dtype).masked_fill(~mask, -math.inf)
    return mask.to(like.dtype)


@register("scaled_dot_product_attention", since="iOS18")
def scaled_dot_product_attention(query, key, value, attn_mask=None):
    """softmax(Q K^T / sqrt(E) + mask) V, the MIL definition (no dropout, no causal flag, no scale)."""
    scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(query.shape[-1])
    if attn_mask is not None:
        scores = scores + _additive_mask(attn_mask, scores)
    return torch.matmul(torch.softmax(scores, dim=-1), value)
