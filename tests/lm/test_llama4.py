"""Llama 4 (text): what it brings beyond LLaMA is each exercised by the tiny config, so that dropping it fails."""

from __future__ import annotations

import torch

from devicefit.convert.lm_wrapper import causal_mask, lm_shape, stateful_wrapper
from tests.lm.families import VOCAB, tiny_lm


def test_chunked_attention_and_temperature_tuning_are_exact_and_matter() -> None:
    model = tiny_lm(
        "llama4_text"
    )  # chunks of 4 on layer 0; NoPE layer 1 tuned from position 3 (floor_scale 4)
    assert lm_shape(model).rotation == "interleaved_halves"
    ids = torch.randint(0, VOCAB, (1, 14), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = model(ids).logits
        wrapper = stateful_wrapper(model, max_context=32)
        assert wrapper.chunks == [4, None]
        got = wrapper(ids[:, :6], causal_mask(6, 6))
        steps = [wrapper(ids[:, p : p + 1], causal_mask(1, p + 1)) for p in range(6, 14)]
        got = torch.cat([got, *steps], dim=1)
        unchunked = stateful_wrapper(model, max_context=32)
        unchunked.chunks = [None, None]
        untuned = stateful_wrapper(model, max_context=32)
        untuned.attn_temperature.fill_(1.0)
        without = {
            "chunks": unchunked(ids, causal_mask(14, 14)),
            "temperature": untuned(ids, causal_mask(14, 14)),
        }
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), (got - expected).abs().max()
    for what, logits in without.items():
        # the first chunk (positions 0-3) is the same either way; past it the logits must differ
        assert torch.allclose(logits[:, :3], expected[:, :3], atol=1e-4), what
        assert not torch.allclose(logits[:, 4:], expected[:, 4:], atol=1e-2), what


def test_a_cache_longer_than_a_chunk_holds_every_position() -> None:
    """The chunks are expressed in the mask, so the cache need not be limited to one chunk: a decode step in the
    fourth chunk writes its slot and attends to its own chunk only."""
    model = tiny_lm("llama4_text")
    ids = torch.randint(0, VOCAB, (1, 15), generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        expected = model(ids).logits[:, -1]
        wrapper = stateful_wrapper(model, max_context=64)
        wrapper(ids[:, :14], causal_mask(14, 14))
        got = wrapper(ids[:, 14:], causal_mask(1, 15))[:, -1]
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert wrapper.k_cache[:, :, :, 14].abs().max() > 0 and wrapper.k_cache[:, :, :, 15:].abs().max() == 0
