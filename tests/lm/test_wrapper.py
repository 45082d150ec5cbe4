"""The stateful wrapper computes what the transformers model computes, prompt then token by token."""

from __future__ import annotations

import pytest
import torch

from devicefit.convert.lm_wrapper import StatefulCausalLM, causal_mask, lm_shape
from devicefit.errors import InputError
from tests.lm.families import FAMILIES, VOCAB, tiny_lm


@pytest.mark.parametrize("family", FAMILIES)
def test_wrapper_matches_transformers_prefill_then_decode(family: str) -> None:
    model = tiny_lm(family)
    ids = torch.randint(0, VOCAB, (1, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(ids).logits
        wrapper = StatefulCausalLM(model, max_context=16)
        parts = [wrapper(ids[:, :6], causal_mask(6, 6))]
        for pos in range(6, 9):
            parts.append(wrapper(ids[:, pos : pos + 1], causal_mask(1, pos + 1)))
    got = torch.cat(parts, dim=1)
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), (got - expected).abs().max()
    # the cache holds exactly the 9 positions written; the rest stays zero
    assert wrapper.k_cache[:, :, :, 9:].abs().max() == 0
    assert wrapper.k_cache[:, :, :, :9].abs().max() > 0


def test_shape_reads_gqa_partial_rotary_and_sliding_window() -> None:
    assert lm_shape(tiny_lm("llama")).num_kv_heads == 2
    phi = lm_shape(tiny_lm("phi"))
    assert (phi.layout, phi.rotary_dim, phi.head_dim) == ("parallel", 8, 16)
    assert lm_shape(tiny_lm("mistral")).sliding_window == 4096
    assert lm_shape(tiny_lm("qwen2")).sliding_window is None  # use_sliding_window is off by default


def test_uncovered_family_says_why() -> None:
    import transformers as tf

    model = tf.GPT2LMHeadModel(tf.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50))
    with pytest.raises(InputError, match=r"gpt2 models are not covered.*learned absolute positions"):
        lm_shape(model)


def test_causal_mask_blocks_future_slots_only() -> None:
    mask = causal_mask(2, 5)[0, 0]
    assert mask.shape == (2, 5)
    assert (mask[0, :4] == 0).all() and mask[0, 4] < -1e3
    assert (mask[1] == 0).all()
