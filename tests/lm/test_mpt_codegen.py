"""MPT and CodeGen through the classic-family wrapper: what each brings (MPT's ALiBi and clipped q/k/v, CodeGen's
grouped q/v/k layout) is exercised so that dropping it fails, and MPT settings transformers ignores are refused."""

from __future__ import annotations

import pytest
import torch

from devicefit.convert.lm_wrapper import causal_mask, lm_shape, stateful_wrapper
from devicefit.errors import InputError
from tests.lm.families import VOCAB, tiny_lm


def _prefill_then_decode(wrapper: torch.nn.Module, ids: torch.Tensor, prompt: int) -> torch.Tensor:
    parts = [wrapper(ids[:, :prompt], causal_mask(prompt, prompt))]
    for pos in range(prompt, ids.shape[1]):
        parts.append(wrapper(ids[:, pos : pos + 1], causal_mask(1, pos + 1)))
    return torch.cat(parts, dim=1)


def test_mpt_alibi_is_relative_to_the_newest_key_and_matters() -> None:
    model = tiny_lm("mpt")  # 6 heads: MPT's interleaved slopes for a head count not a power of two
    ids = torch.randint(0, VOCAB, (1, 14), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = model(ids).logits
        wrapper = stateful_wrapper(model, max_context=64)
        got = _prefill_then_decode(wrapper, ids, 9)
        # the newest key's bias is 0, the one before it -slope: small numbers, exact in fp16
        end = 5
        bias = wrapper.alibi_slopes * (wrapper.positions[:end] - (end - 1))
        assert torch.equal(bias[:, 0, -1], torch.zeros(6)) and bool((bias[:, 0, -2] < 0).all())
        ignored = stateful_wrapper(model, max_context=64)
        ignored.alibi_slopes.zero_()
        unbiased = ignored(ids, causal_mask(14, 14))
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), (got - expected).abs().max()
    assert not torch.allclose(unbiased, expected, atol=1e-2)


def test_mpt_clip_qkv_is_applied() -> None:
    """The clipping variant matches transformers, and the clipping changes its logits (it is exercised)."""
    model = tiny_lm("mpt_clip")
    ids = torch.randint(0, VOCAB, (1, 10), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = model(ids).logits
        got = _prefill_then_decode(stateful_wrapper(model, max_context=16), ids, 6)
        for block in model.transformer.blocks:
            block.attn.clip_qkv = None
        unclipped = model(ids).logits
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), (got - expected).abs().max()
    assert not torch.allclose(unclipped, expected, atol=1e-2)


@pytest.mark.parametrize(
    ("setting", "value"),
    [("qk_ln", True), ("alibi", False), ("alibi_bias_max", 16), ("attn_type", "multiquery_attention")],
)
def test_mpt_settings_transformers_ignores_are_refused(setting: str, value: object) -> None:
    model = tiny_lm("mpt")
    setattr(model.config.attn_config, setting, value)
    with pytest.raises(
        InputError, match=rf"this mpt model sets attn_config\.{setting}=.*which transformers' MPT"
    ):
        lm_shape(model)
    with pytest.raises(InputError, match=r"not converted; MPT checkpoints with .* are covered"):
        stateful_wrapper(model, max_context=16)
    setattr(model.config.attn_config, setting, getattr(type(model.config.attn_config)(), setting))
    model.config.logit_scale = 2.0
    with pytest.raises(InputError, match=r"this mpt model sets logit_scale=2\.0"):
        lm_shape(model)
    model.config.logit_scale = None
    model.config.no_bias = False
    with pytest.raises(InputError, match=r"this mpt model sets no_bias=False"):
        lm_shape(model)


def test_codegen_groups_q_v_k_per_model_parallel_shard() -> None:
    """CodeGen's fused projection is 4 groups of [q | v | k]: read as one [q | k | v] (GPT-2's layout), the
    logits differ, so the equivalence test would catch a wrong split."""
    model = tiny_lm("codegen")
    assert lm_shape(model).rotary_dim == 8 and lm_shape(model).layout == "parallel"
    ids = torch.randint(0, VOCAB, (1, 8), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        expected = model(ids).logits
        wrapper = stateful_wrapper(model, max_context=16)
        assert torch.allclose(wrapper(ids, causal_mask(8, 8)), expected, atol=1e-4, rtol=1e-4)
        wrong = stateful_wrapper(model, max_context=16)
        for block in model.transformer.h:
            block.attn.mp_num = 1  # one group: [q | v | k] over all heads
        misread = wrong(ids, causal_mask(8, 8))
    assert not torch.allclose(misread, expected, atol=1e-2)
