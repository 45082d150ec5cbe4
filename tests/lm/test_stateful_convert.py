"""Stateful prefill + decode packages: structure, interpreter generation against PyTorch, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from devicefit.compare.generation import check_generation
from devicefit.convert.lm_families import mlp_of
from devicefit.convert.stateful import convert_causal_lm
from devicefit.engines.lm_session import InterpLM, TorchLM
from devicefit.errors import InputError, OutputExistsError
from tests.lm.families import ALL_FAMILIES, INFERRED, VOCAB, tiny_lm


def test_package_has_prefill_and_decode_sharing_weights_and_state(llama_pkg: tuple[object, Path]) -> None:
    import devicefit.interp as interp
    from devicefit.convert.merge import weight_bytes

    model, pkg = llama_pkg
    decode = interp.load(pkg, function="decode")
    prefill = interp.load(pkg, function="prefill")
    assert sorted(decode.functions) == ["decode", "prefill"]
    for fn in (decode, prefill):
        assert {s.name: (s.dtype, s.shape) for s in fn.states} == {
            "k_cache": ("fp16", (2, 1, 2, 24, 16)),
            "v_cache": ("fp16", (2, 1, 2, 24, 16)),
        }
        assert "read_state" in fn.op_counts and "coreml_update_state" in fn.op_counts
    ids = next(s for s in prefill.inputs if s.name == "input_ids")
    assert ids.shape_range == [(1, 1), (1, 24)]
    params = sum(p.numel() for p in model.parameters())  # type: ignore[attr-defined]
    # one fp32 copy of the weights (lm_head is separate from the embedding here), not two
    assert weight_bytes(pkg) < 1.3 * 4 * params


def test_interpreter_greedy_tokens_match_pytorch(llama_pkg: tuple[object, Path]) -> None:
    model, pkg = llama_pkg
    rng = np.random.default_rng(0)
    prompts = [rng.integers(0, VOCAB, 5), rng.integers(0, VOCAB, 1)]
    result = check_generation(
        TorchLM(model, 24), {"fp32": InterpLM(pkg)}, prompts, 6, rng.integers(0, VOCAB, 20)
    )
    run = result.runs[0]
    assert run.token_agreement == 1.0 and run.first_diff_step is None, run.prompts
    assert min(run.step_cosine) > 0.99999
    assert run.perplexity_change is not None and abs(run.perplexity_change) < 1e-4
    assert run.verdict == "pass" and result.verdict == "pass"
    summary = result.summary()
    assert summary["lm.fp32.token_agreement"] == 1.0 and summary["lm.fp32.first_diff_step"] == -1


def test_a_different_model_is_caught(llama_pkg: tuple[object, Path]) -> None:
    """The check can fail: PyTorch = another seed's weights, so the fp32 package must disagree."""
    _, pkg = llama_pkg
    other = tiny_lm("llama", seed=1)
    rng = np.random.default_rng(0)
    result = check_generation(TorchLM(other, 24), {"fp32": InterpLM(pkg)}, [rng.integers(0, VOCAB, 4)], 5)
    run = result.runs[0]
    assert run.verdict == "fail" and run.first_diff_step is not None
    assert "conversion problem" in run.reason


def test_session_refuses_tokens_past_the_context(llama_pkg: tuple[object, Path]) -> None:
    _, pkg = llama_pkg
    lm = InterpLM(pkg)
    lm.feed(np.arange(20))
    with pytest.raises(InputError, match="exceed the package's context of 24"):
        lm.feed(np.arange(5))


@pytest.mark.slow
def test_enumerated_prefill_lengths_pad_prompts(tmp_path: Path) -> None:
    model = tiny_lm("qwen2")
    pkg = tmp_path / "q.mlpackage"
    conv = convert_causal_lm(model, pkg, max_context=16, precision="fp32", prefill_lengths=[8, 4])
    assert conv.prefill_lengths == [4, 8]
    lm, ref = InterpLM(pkg), TorchLM(model, 16)
    ids = np.array([3, 1, 4, 1, 5, 9])  # padded to 8 by prefill, then decode continues at position 6
    np.testing.assert_allclose(lm.feed(ids), ref.feed(ids), atol=1e-4)
    np.testing.assert_allclose(lm.feed(np.array([2])), ref.feed(np.array([2])), atol=1e-4)


def test_bad_arguments_are_one_line_errors(tmp_path: Path, llama_pkg: tuple[object, Path]) -> None:
    model, pkg = llama_pkg
    with pytest.raises(InputError, match="--max-context must be an integer >= 2"):
        convert_causal_lm(model, tmp_path / "a.mlpackage", max_context=1)
    with pytest.raises(InputError, match=r"prefill lengths must lie in 1\.\.8"):
        convert_causal_lm(model, tmp_path / "a.mlpackage", max_context=8, prefill_lengths=[9])
    with pytest.raises(OutputExistsError):
        convert_causal_lm(model, pkg, max_context=8)
    with pytest.raises(InputError, match="original context"):
        convert_causal_lm(tiny_lm("phi3_longrope"), tmp_path / "p.mlpackage", max_context=65)


MOE_FAMILIES = (
    "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "phimoe", "gpt_oss", "glm4_moe", "exaone_moe", "minimax_m2", "dots1",
    "deepseek_v3", "deepseek_v3_plain", "deepseek_v2", "afmoe", "llama4_text", "lfm2_moe",
)  # fmt: skip
# routers that mask experts by a relative-distance threshold (Phi-MoE's sparsemixer: (best - s) / |s| > 0.02) flip
# more often in fp16 than a top-k ranking: the tiny config's fp16 run, 2026-12-02, had low steps 13 (0.950, 2.3
# fp16 spacings from the threshold), 14 (0.868, carried by the cache) and 30 (0.978, 16 spacings: beyond the bound
# below, within fp16's accumulated error of ~0.8% there). Its fp32 run is exact; fp16 low steps are reported only.
THRESHOLD_ROUTERS = ("phimoe",)


# a router logit is a fp16 dot product of fp16 hidden states that already carry a few spacings of error each: two
# logits within this many fp16 spacings (at their magnitude) are a tie fp16 cannot order reliably
FP16_ROUTER_ULPS = 8


def _fp16_ulp(value: float) -> float:
    """The spacing of fp16 numbers at ``value``'s magnitude (normal range)."""
    return float(np.spacing(np.float16(abs(value))))


def _router_gap(model, context: int, prompts: list, steps: int, step: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """The smallest gap, over layers and prompts, between the k-th and the next router logit at ``step`` of
    PyTorch's greedy generation (fp32), and the k-th logit there."""
    import torch

    from devicefit.engines.lm_session import greedy

    gaps = []
    for prompt in prompts:
        tokens = greedy(TorchLM(model, context), np.asarray(prompt), steps).argmax(axis=-1)
        ids = torch.tensor(np.concatenate([prompt, tokens])[None])
        with torch.no_grad():
            routers = model(ids, output_router_logits=True).router_logits
        k = model.config.num_experts_per_tok
        at = len(prompt) - 1 + step
        # Llama 4's mixtures sit under feed_forward
        blocks = [mlp_of(layer) for layer in model.model.layers if hasattr(mlp_of(layer), "experts")]
        for logits, block in zip(routers, blocks, strict=True):
            ranked = torch.sort(logits[at].float(), descending=True).values
            gaps.append((float(ranked[k - 1] - ranked[k]), float(ranked[k - 1])))
            if model.config.model_type == "phimoe":
                gaps.extend(_sparsemixer_margins(ranked, 2 * model.config.router_jitter_noise))
            gaps.extend(_biased_and_grouped_margins(block, logits[at].float(), k))
    return min(gaps)


def _biased_and_grouped_margins(block, logits, k: int) -> list[tuple[float, float]]:  # type: ignore[no-untyped-def]
    """Sigmoid routers with a score-correction bias (DeepSeek-V3, MiniMax-M2, dots1) rank sigmoid(logit) + bias,
    and group-limited ones (DeepSeek-V2 / V3) first keep the best groups (V3: sum of each group's top two scores;
    V2: its best logit): the gap between the k-th and next choice score, and between the last kept and the next
    group, with the score each concerns."""
    import torch

    gate = getattr(block, "gate", None) or getattr(block, "router", None)
    bias = getattr(gate, "e_score_correction_bias", getattr(block, "e_score_correction_bias", None))
    bias = getattr(block, "expert_bias", None) if bias is None else bias  # AFMoE
    scores = logits.sigmoid() + bias if bias is not None else logits
    margins = []
    if bias is not None:
        ranked = torch.sort(scores, descending=True).values
        margins.append((float(ranked[k - 1] - ranked[k]), float(ranked[k - 1])))
    groups, kept = getattr(gate, "num_group", None), getattr(gate, "topk_group", None)
    if groups and kept and kept < groups:
        per_group = scores.view(groups, -1)
        group_scores = per_group.topk(2, dim=-1)[0].sum(-1) if bias is not None else per_group.max(-1).values
        ranked = torch.sort(group_scores, descending=True).values
        margins.append((float(ranked[kept - 1] - ranked[kept]), float(ranked[kept - 1])))
    return margins


def _sparsemixer_margins(ranked, threshold: float) -> list[tuple[float, float]]:  # type: ignore[no-untyped-def]
    """Phi-MoE's router (transformers' ``sparsemixer``) masks an expert when ``(best - s) / max(|s|, best) >
    threshold``, ``best`` the first then the second expert: each comparison's distance from flipping, in logit
    units, with the logit it concerns."""
    margins = []
    for ref in (0, 1):
        best = float(ranked[ref])
        for i, s in enumerate(ranked.tolist()):
            if i != ref:
                margins.append((abs((best - s) - threshold * max(abs(s), best)), s))
    return margins


@pytest.mark.slow
@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_64_greedy_steps_fp32_exact_and_fp16_reported(family: str, tmp_path: Path) -> None:
    # the long-rope config's original context is 64 positions: a longer cache is refused (test_wrapper)
    context, steps = (64, 52) if family == "phi3_longrope" else (80, 64)
    model = tiny_lm(family)
    p32, p16 = tmp_path / "f32.mlpackage", tmp_path / "f16.mlpackage"
    conversion = convert_causal_lm(model, p32, max_context=context, precision="fp32")
    # a family the wrapper was not written for says so, with the layout the probe verified
    assert any("not one of the families" in n for n in conversion.notes) == (family in INFERRED)
    convert_causal_lm(model, p16, max_context=context, precision="fp16")
    rng = np.random.default_rng(0)
    prompts = [rng.integers(0, VOCAB, 8), rng.integers(0, VOCAB, 3)]
    result = check_generation(
        TorchLM(model, context),
        {"fp32": InterpLM(p32), "fp16": InterpLM(p16, "fp16")},
        prompts,
        steps,
        rng.integers(0, VOCAB, 72),
    )
    fp32, fp16 = result.runs
    assert fp32.token_agreement == 1.0 and fp32.first_diff_step is None and fp32.verdict == "pass"
    assert fp16.perplexity is not None and np.isfinite(fp16.perplexity)
    assert len(fp16.step_cosine) == steps
    low = [i for i, c in enumerate(fp16.step_cosine) if c <= 0.99]
    # A step whose fp16 logits part from PyTorch's must be explained: only a mixture of experts may have one, at
    # a token whose router ranks its k-th and next expert closer than fp16 can tell apart (fp16 then may pick the
    # other expert). Mixtral, 2026-12-01: step 38 read 0.954 (the rest >= 0.99997) where the fp32 router's
    # top-2 / third gap is 0.0011 (fp16's spacing near 1 is 0.00098). OLMoE, 2026-12-02: step 46 read 0.941 where
    # the second and third router logits are 0.7907 and 0.7880 (5.5 fp16 spacings apart at that magnitude).
    # Phi-MoE, 2026-12-02: step 13 read 0.950 where its router's mask test (best - s) / |s| > 0.02 stood at 0.0216
    # for the logits -0.3597 and -0.3676 (2.3 fp16 spacings from flipping).
    # DeepSeek-V3 (q_proj, rotary halves), 2026-12-02: step 63 read 0.783 where two of its sigmoid + bias choice
    # scores are 0.0003 apart at 0.81 (0.6 fp16 spacings); an earlier DeepSeek-V3 config flipped at a group-limited
    # tie (group scores 1.3115 / 1.3161, 4.8 spacings): those margins are the router's own (_biased_and_grouped_margins).
    # A run of low steps needs the explanation at its first step only: the token routed otherwise stays in the KV
    # cache, and the next steps attend to it (Phi-MoE: step 14 read 0.868 after step 13's flip).
    for step in low:
        assert family in MOE_FAMILIES, (family, step, fp16.step_cosine[step])
        if step - 1 in low or family in THRESHOLD_ROUTERS:
            continue
        gap, level = _router_gap(model, context, prompts, steps, step)
        assert gap < FP16_ROUTER_ULPS * _fp16_ulp(level), (step, fp16.step_cosine[step], gap, level)


def _fp16_decode_cosine(model: Any, tmp_path: Path, context: int, slot: int) -> float:
    """The cosine between an fp16 package's and PyTorch's logits for one decode step at ``slot``, both reading
    the same random (fp16-exact) cache: every key the mask admits or biases moves the logits."""
    import torch

    from devicefit.convert.lm_wrapper import causal_mask, stateful_wrapper

    pkg = tmp_path / "decode.mlpackage"
    convert_causal_lm(model, pkg, max_context=context, precision="fp16")
    lm = InterpLM(pkg, "fp16")
    rng = np.random.default_rng(0)
    cache = {n: rng.normal(0, 1, s.shape).astype(np.float16).astype(np.float32) for n, s in lm.states.items()}
    lm.states, lm.position = dict(cache), slot
    got = lm.feed(np.array([5]))[0]
    reference = stateful_wrapper(model, context, round_cache_fp16=True)
    with torch.no_grad():
        for name, value in cache.items():
            getattr(reference, name).copy_(torch.from_numpy(value))
        expected = reference(torch.tensor([[5]]), causal_mask(1, slot + 1))[0, 0].numpy()
    return float(got @ expected / np.linalg.norm(got) / np.linalg.norm(expected))


@pytest.mark.slow
def test_fp16_package_masks_the_window_exactly_past_2048(tmp_path: Path) -> None:
    """A decode step at slot 2091 of an fp16 package with a sliding window of 4: the package's float positions
    read 2091 as 2092 (fp16 holds integers exactly up to 2048), so the window admitted other keys than
    transformers'."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    config = tf.MistralConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, sliding_window=4, max_position_embeddings=4096, initializer_range=0.2,
    )  # fmt: skip
    cosine = _fp16_decode_cosine(tf.MistralForCausalLM(config).eval(), tmp_path, context=2100, slot=2091)
    assert cosine > 0.9999, cosine


@pytest.mark.slow
def test_fp16_bloom_package_keeps_alibi_biases_of_nearby_keys_exact(tmp_path: Path) -> None:
    """A decode step at slot 1500 of an fp16 BLOOM package: a table of slope x position stored as fp16 constants
    rounds the newest keys' biases by up to half a logit there (fp16's spacing at 1000 is 0.5); the slopes applied
    to the int32 distance from the newest key keep them exact."""
    model = tiny_lm("bloom")
    model.config.max_position_embeddings = (
        2048  # BLOOM has no position table: the tiny config's 256 is nominal
    )
    cosine = _fp16_decode_cosine(model, tmp_path, context=1536, slot=1500)
    assert cosine > 0.9999, cosine
