"""``F.scaled_dot_product_attention`` with a bool or causal mask where coremltools decomposes it (below iOS18, or
with ``scale=``): coremltools 9.0 adds ``-3e4`` for a masked score, which masks nothing once the scores are more
than 3e4 apart. Found by the differential fuzzer (tests/interp/difffuzz.py, seed 217: a causal attention over
values in the thousands attended to later positions).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.convert.elementwise_helpers import Fn, source_of

FRONTENDS = ["torchscript", "torch.export"]


def _run(fn, inputs, frontend, target, precision="fp32"):
    from devicefit import interp
    from devicefit.convert import ConvertOptions, convert

    source = source_of(Fn(fn).eval(), inputs)
    result = convert(source, ConvertOptions(precision=precision, frontend=frontend, target=target))
    outputs = interp.load(result.mlmodel).run(source.coreml_feeds(source.example_inputs), precision=precision)
    reference = source.reference(source.example_inputs)
    return [outputs[name] for name in reference], list(reference.values()), list(result.scan.rescued)


def _large_scores() -> torch.Tensor:
    # scores q.k / 2 reach 1e6: a later position's score beats an earlier one by far more than 3e4
    x = torch.randn(2, 3, 5, 4, generator=torch.Generator().manual_seed(0)) * 300
    return x.abs()


MASK = torch.tensor(np.tril(np.ones((5, 5), dtype=bool)) & ~np.eye(5, k=-2, dtype=bool))


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("target", ["iOS16", "iOS17", "iOS18"])
@pytest.mark.parametrize(
    "form",
    {
        "causal": lambda x: F.scaled_dot_product_attention(x, x, x, is_causal=True),
        "causal_scaled": lambda x: F.scaled_dot_product_attention(x, x, x, is_causal=True, scale=0.5),
        "bool_mask": lambda x: F.scaled_dot_product_attention(x, x, x, MASK),
        "bool_mask_scaled": lambda x: F.scaled_dot_product_attention(x, x, x, MASK, scale=2.0),
    }.items(),
    ids=lambda f: f[0] if isinstance(f, tuple) else str(f),
)
def test_masked_scores_stay_masked(form, target, frontend):
    got, expected, _ = _run(form[1], (_large_scores(),), frontend, target)
    scale = float(np.abs(expected[0]).max())
    assert np.abs(got[0] - expected[0]).max() <= 1e-5 * scale


@pytest.mark.parametrize("target", ["iOS16", "iOS18"])
def test_fp16_masking_still_gives_finite_values(target):
    x = torch.randn(1, 2, 6, 8, generator=torch.Generator().manual_seed(1))
    got, expected, _ = _run(
        lambda t: F.scaled_dot_product_attention(t, t, t, is_causal=True, scale=0.3),
        (x,),
        "torchscript",
        target,
        "fp16",
    )
    assert np.isfinite(got[0]).all()
    assert np.abs(got[0] - expected[0]).max() <= 2e-2 * float(np.abs(expected[0]).max())


@pytest.mark.parametrize(
    "form",
    {
        "plain": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, enable_gqa=True),
        "causal_scaled": lambda q, k, v: F.scaled_dot_product_attention(
            q, k, v, is_causal=True, scale=0.5, enable_gqa=True
        ),
        "float_mask": lambda q, k, v: F.scaled_dot_product_attention(
            q, k, v, torch.full((5, 5), -1e4).triu(1), enable_gqa=True
        ),
    }.items(),
    ids=lambda f: f[0] if isinstance(f, tuple) else str(f),
)
def test_grouped_query_attention_by_enable_gqa_converts(form):
    # PyTorch 2.5's enable_gqa=True (Hugging Face's SDPA attention passes it when there is no mask): 6 query
    # heads on 2 key / value heads, each shared by 3 consecutive query heads; coremltools ignored the flag and
    # failed to broadcast 6 heads against 2 ("unsupported op scaled_dot_product_attention")
    g = torch.Generator().manual_seed(3)
    q, k, v = (
        torch.randn(1, 6, 5, 4, generator=g),
        torch.randn(1, 2, 5, 4, generator=g),
        torch.randn(1, 2, 5, 4, generator=g),
    )
    # NOTE: iOS18 only: the repeated heads take devicefit's own attention on every target (the fused op has no
    # enable_gqa), so one target covers the path
    got, expected, _ = _run(form[1], (q, k, v), "torchscript", "iOS18")
    assert got[0].shape == expected[0].shape
    assert np.abs(got[0] - expected[0]).max() <= 1e-5 * float(np.abs(expected[0]).max())
