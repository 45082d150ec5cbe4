"""DeepSeek's latent attention (MLA) over a cache of the compressed latent, and DeepSeek-style routers.

The prefill + decode equivalence with transformers runs for every family in test_wrapper.py (LATENT in
families.py); these tests pin what the cache holds, its memory, and that the tiny configs exercise the routing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from devicefit.analyze.kv_cache import lm_memory
from devicefit.convert.lm_mla import expanded_bytes_per_token
from devicefit.convert.lm_wrapper import causal_mask, lm_shape, stateful_wrapper
from devicefit.errors import InputError
from tests.lm.families import VOCAB, tiny_lm


@pytest.mark.parametrize("family", ["deepseek_v3", "deepseek_v2"])
def test_the_cache_holds_the_compressed_latent_not_expanded_heads(family: str) -> None:
    model = tiny_lm(family)  # 4 heads, kv_lora_rank 32, rope 8, nope 32, value 8
    ids = torch.randint(0, VOCAB, (1, 6), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        wrapper = stateful_wrapper(model, max_context=10)
        wrapper(ids, causal_mask(6, 6))
        own = model(ids, use_cache=True).past_key_values
    assert tuple(wrapper.k_cache.shape) == (2, 1, 1, 10, 32)
    assert tuple(wrapper.v_cache.shape) == (2, 1, 1, 10, 8)
    # the latent is what transformers' own cache keeps for the layer (kv_a_layernorm's output)
    for i in range(2):
        latent = own.layers[i].keys  # (1, 1, seq, kv_lora_rank)
        assert torch.allclose(wrapper.k_cache[i, :, :, :6], latent, atol=1e-5), i
    assert wrapper.k_cache[:, :, :, 6:].abs().max() == 0


def test_latent_cache_memory_per_token() -> None:
    model = tiny_lm("deepseek_v3")
    shape = lm_shape(model)
    assert shape.latent == (32, 8) and shape.num_kv_heads == 1
    mem = lm_memory(shape, 100, weight_bytes=1000, parameters=500, intermediate_size=128, devices=[])
    # latent + rotated key, fp16, per token and layer: (32 + 8) x 2 B, against 4 heads x (40 + 8) x 2 B expanded
    assert mem.kv_cache_per_layer_bytes == (32 + 8) * 2 * 100
    assert mem.kv_cache_bytes == 2 * mem.kv_cache_per_layer_bytes
    assert shape.cache_bytes_per_layer(1) == 80 and expanded_bytes_per_token(model) == 4 * (40 + 8) * 2


@pytest.mark.parametrize("family", ["deepseek_v3", "minimax_m2"])
def test_the_routers_score_correction_bias_decides(family: str) -> None:
    """The tiny configs route with random score-correction biases: with them zeroed, transformers' own logits
    change, so the wrapper's equality with them (test_wrapper.py) covers the bias."""
    model = tiny_lm(family)
    ids = torch.randint(0, VOCAB, (1, 12), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        biased = model(ids).logits
        wrapper = stateful_wrapper(model, max_context=12)
        assert torch.allclose(wrapper(ids, causal_mask(12, 12)), biased, atol=1e-4, rtol=1e-4)
        for name, buffer in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                buffer.zero_()
        unbiased = model(ids).logits
    assert not torch.allclose(unbiased, biased, atol=1e-3)


def test_a_biased_latent_expansion_is_refused_naming_the_module() -> None:
    model = tiny_lm("deepseek_v3")
    attn = model.model.layers[1].self_attn
    attn.kv_b_proj.bias = torch.nn.Parameter(torch.zeros(attn.kv_b_proj.out_features))
    with pytest.raises(InputError, match=r"model\.layers\.1\.self_attn\.kv_b_proj has a bias") as info:
        lm_shape(model)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("family", "why"), [("deepseek_v32", "sparse attention"), ("longcat_flash", "two latent")]
)
def test_latent_families_it_does_not_run_are_refused_in_one_line(family: str, why: str) -> None:
    model = type("M", (), {"config": type("C", (), {"model_type": family})()})()
    with pytest.raises(InputError, match=rf"{family} models are not covered .*{why}") as info:
        lm_shape(model)
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_absorbed_latent_weights_are_compressed_as_attention(tmp_path: Path) -> None:
    """kv_b_proj's per-head key and value rows (the absorbed form's operands) keep a name in the package that places
    them among the attention weights: as slices of the weight inside the trace they were unnamed constants that
    compression skipped, left at fp16."""
    import devicefit.interp as interp
    from devicefit.compress.lm import _weight_shapes, compress_lm, group_of
    from devicefit.convert.stateful import convert_causal_lm
    from devicefit.interp.package import read_spec

    pkg = tmp_path / "mla.mlpackage"
    convert_causal_lm(tiny_lm("deepseek_v3"), pkg, max_context=16, precision="fp32")
    absorbed = {n: s for n, s in _weight_shapes(read_spec(pkg)[0]).items() if "kv_b" in n}
    # per layer (2), laid out (outputs, inputs): the key rows (4 heads, latent 32, nope 32) and the value rows
    # (4 heads, value 8, latent 32)
    assert sorted(absorbed.values()) == [(4, 8, 32)] * 2 + [(4, 32, 32)] * 2
    assert all(group_of(n) == "attention" for n in absorbed)
    out = compress_lm(pkg, {"attention": "int4-b32"}, tmp_path / "q.mlpackage")
    quantized = interp.load(out, function="decode").op_counts
    # per layer: q_a, q_b, kv_a, o and the absorbed key and value rows
    assert quantized.get("constexpr_blockwise_shift_scale", 0) == 2 * 6


@pytest.mark.slow
def test_check_of_a_deepseek_folder_reports_the_latent_cache(tmp_path: Path) -> None:
    """`devicefit check` on a saved DeepSeek-V3 folder: the loaded model (its score-correction biases included)
    converts, generates PyTorch's tokens, and the memory counts the latent cache, not expanded heads."""
    import json

    from devicefit.cli import main

    folder = tmp_path / "tiny-deepseek"
    tiny_lm("deepseek_v3").save_pretrained(folder)
    report = tmp_path / "r.json"
    code = main(["check", str(folder), "--steps", "4", "--max-context", "24", "--json", str(report)])
    data = json.loads(report.read_text())
    runs = {r["name"]: r for r in data["generation"]["runs"]}
    assert data["family"] == "deepseek_v3" and runs["fp32"]["token_agreement"] == 1.0
    # (kv_lora_rank 32 + rope 8) x 2 B x 24 tokens per layer; expanded keys and values would be 4.8x that
    assert data["memory"]["kv_cache_per_layer_bytes"] == (32 + 8) * 2 * 24
    assert any("latent attention" in n for n in data["notes"])
    assert code == 0
