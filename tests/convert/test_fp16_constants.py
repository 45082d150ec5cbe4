"""fp16-safe constants: the conversion pass (on by default, reported, opt-out) and find_unsafe_constants."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devicefit import interp
from devicefit.convert import ConvertOptions, convert
from devicefit.convert.fp16_constants import PASS_NAME, SAFE_SENTINEL, find_unsafe_constants
from tests.convert.helpers import source_of
from tests.corpus.families import BY_NAME

NEG = torch.finfo(torch.float32).min


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _run(result, source, precision: str) -> dict[str, np.ndarray]:
    return interp.load(result.mlmodel).run(source.coreml_feeds(source.example_inputs), precision=precision)


class MaskedFillSoftmax(torch.nn.Module):
    """DeBERTa's pattern: masked_fill(~mask, finfo.min) then softmax; row 2 is fully masked."""

    def forward(self, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.softmax(scores.masked_fill(mask[:, None, :] == 0, NEG), dim=-1)


class TwoAdditiveMasks(torch.nn.Module):
    """An additive padding mask plus an additive causal mask, both finfo.min: summed they must stay finite."""

    def forward(self, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        padding = (1.0 - mask.float())[:, None, :] * NEG
        causal = torch.triu(torch.full((6, 6), NEG), diagonal=1)
        return torch.softmax(scores + padding + causal, dim=-1)


class Bounds(torch.nn.Module):
    """A clamp bound beyond fp16 and a finite constant beyond fp16 (1e5 becomes inf when cast)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x * 100, min=-1e6) + torch.minimum(x, torch.tensor(1e5))


def _scores_and_mask(full_row: bool) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    scores = torch.randn(3, 6, 6) * 4
    mask = torch.ones(3, 6, dtype=torch.int32)
    mask[1, 4:] = 0
    if full_row:
        mask[2, :] = 0
    return scores, mask


def test_masked_fill_of_fully_masked_rows_stays_finite_and_matches_torch():
    scores, mask = _scores_and_mask(full_row=True)
    source = source_of(MaskedFillSoftmax(), (scores, mask))
    result = convert(source, ConvertOptions(precision="fp16", frontend="torchscript"))
    assert [fix.after for fix in result.fp16_constant_fixes] == [SAFE_SENTINEL]
    assert "select" in result.fp16_constant_fixes[0].consumers
    reference = next(iter(source.reference(source.example_inputs).values()))
    for precision in ("fp32", "fp16"):
        got = next(iter(_run(result, source, precision).values()))
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, reference, atol=2e-3)  # the fully masked row is uniform, as in torch
    assert find_unsafe_constants(result.mlmodel) == []


def test_two_additive_masks_stay_finite():
    scores, mask = _scores_and_mask(full_row=False)
    source = source_of(TwoAdditiveMasks(), (scores, mask))
    result = convert(source, ConvertOptions(precision="fp16", frontend="torchscript"))
    assert result.fp16_constant_fixes
    reference = next(iter(source.reference(source.example_inputs).values()))
    got = next(iter(_run(result, source, "fp16").values()))
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, reference, atol=2e-3)


def test_bounds_map_to_the_fp16_extreme():
    source = source_of(Bounds(), (torch.randn(4, 5),))
    result = convert(source, ConvertOptions(precision="fp16", frontend="torchscript"))
    assert {fix.after for fix in result.fp16_constant_fixes} == {65504.0}
    assert find_unsafe_constants(result.mlmodel) == []


def test_opt_out_keeps_the_constant_and_find_lists_it(tmp_path):
    scores, mask = _scores_and_mask(full_row=True)
    source = source_of(MaskedFillSoftmax(), (scores, mask))
    result = convert(
        source, ConvertOptions(precision="fp16", frontend="torchscript", fp16_safe_constants=False)
    )
    assert result.fp16_constant_fixes == []
    got = next(iter(_run(result, source, "fp16").values()))
    assert np.isnan(got[2]).all()  # the fully masked row: the failure the pass prevents
    [unsafe] = find_unsafe_constants(result.mlmodel)
    assert (unsafe.value, unsafe.dtype, unsafe.consumer_op) == ("-inf", "fp16", "select")
    assert unsafe.consumer_output
    # the same from a saved package, read back from disk (no in-memory MIL program)
    path = result.save(tmp_path / "masked.mlpackage")
    assert find_unsafe_constants(path) == [unsafe]


def test_fp32_conversion_leaves_constants_and_pass_is_not_left_registered():
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY

    scores, mask = _scores_and_mask(full_row=False)
    result = convert(source_of(MaskedFillSoftmax(), (scores, mask)), ConvertOptions(precision="fp32"))
    assert result.fp16_constant_fixes == []
    assert PASS_NAME not in PASS_REGISTRY


@pytest.mark.slow  # ~15 s; the masked-fill test above covers the pattern in the fast suite
@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_tiny_deberta_v2_package_is_finite(frontend):
    module, example = BY_NAME["DeBERTa-v2"].build()
    assert (example["attention_mask"] == 0).any()
    source = source_of(module, example)
    result = convert(source, ConvertOptions(precision="fp16", frontend=frontend))
    assert result.fp16_constant_fixes
    reference = next(iter(source.reference(source.example_inputs).values()))
    for precision in ("fp32", "fp16"):
        got = next(iter(_run(result, source, precision).values()))
        assert np.isfinite(got).all(), precision
        assert _cosine(got, reference) > 0.999, precision


def test_opt_out_flag_reaches_the_conversion_options():
    import argparse

    from devicefit.check.convert import convert_options
    from devicefit.check.types import CheckOptions
    from devicefit.cli._convert_args import add_conversion_arguments

    parser = argparse.ArgumentParser()
    add_conversion_arguments(parser)
    assert parser.parse_args([]).keep_unsafe_constants is False
    assert parser.parse_args(["--keep-unsafe-constants"]).keep_unsafe_constants is True
    assert convert_options(CheckOptions()).fp16_safe_constants is True
    assert convert_options(CheckOptions(fp16_safe_constants=False)).fp16_safe_constants is False
