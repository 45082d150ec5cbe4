"""Rescue translations: each converts, and matches PyTorch through devicefit's interpreter (fp32)."""

from __future__ import annotations

import pytest

from devicefit import interp
from devicefit.convert import RESCUES, ConversionError, ConvertOptions, convert, rescue_translations
from devicefit.sources import load_source
from tests.convert.models import spec
from tests.helpers import rel_error


def _convert_and_compare(factory: str, frontend: str = "torchscript", tol: float = 1e-4):
    source = load_source(spec(factory))
    result = convert(source, ConvertOptions(precision="fp32", frontend=frontend))
    assert result.frontend == frontend
    outputs = interp.load(result.mlmodel).run(source.coreml_feeds(source.example_inputs), precision="fp32")
    reference = source.reference(source.example_inputs)
    assert set(outputs) >= set(reference)
    for name, expected in reference.items():
        assert outputs[name].shape == expected.shape, name
        assert rel_error(outputs[name], expected) < tol, name
    return result


def test_rescue_translations_lists_what_it_installs():
    with rescue_translations() as first:
        assert {"new_ones", "_native_multi_head_attention", "_transformer_encoder_layer_fwd"} <= set(first)
        assert set(first) <= set(RESCUES)


@pytest.mark.parametrize("factory", ["mha", "mha_padded"])
def test_native_multi_head_attention(factory):
    result = _convert_and_compare(factory)
    assert "_native_multi_head_attention" in result.scan.rescued


@pytest.mark.parametrize("factory", ["encoder", "encoder_pre_norm_gelu"])
def test_transformer_encoder_layer_fwd(factory):
    result = _convert_and_compare(factory)
    assert "_transformer_encoder_layer_fwd" in result.scan.rescued


def test_bitwise_and_on_float_typed_mask():
    result = _convert_and_compare("float_mask_and")
    assert "bitwise_and" in result.scan.rescued


def test_bitwise_and_rescue_is_needed(monkeypatch):
    """Without the override, coremltools 9.0 rejects the float-typed mask (proves the rescue matters)."""
    monkeypatch.delitem(RESCUES, "bitwise_and")
    with pytest.raises(ConversionError, match="bitwise_and"):
        convert(load_source(spec("float_mask_and")), ConvertOptions(precision="fp32", frontend="torchscript"))


@pytest.mark.parametrize("frontend", ["torchscript", pytest.param("torch.export", marks=pytest.mark.slow)])
def test_hf_bert_converts_and_matches(frontend):
    result = _convert_and_compare("bert", frontend=frontend)
    assert "new_ones" in result.scan.rescued
