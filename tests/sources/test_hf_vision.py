"""A Hugging Face vision folder (ViT) gets image inputs, not token ids: ``check vit/`` failed with "failed on
inputs input_ids:1x128:int32, attention_mask:1x128:int32: AttributeError: 'NoneType' object has no attribute
'dtype'"."""

from __future__ import annotations

import pytest
import torch

from devicefit.errors import DevicefitError
from devicefit.sources import load_source


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("hf") / "vit"
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=64, num_labels=5, num_channels=3)  # fmt: skip
    ViTForImageClassification(config).save_pretrained(folder)
    return folder


def test_a_vision_folder_gets_pixel_values_at_its_image_size(vit):
    source = load_source(str(vit))
    assert [(s.name, s.shape, s.dtype) for s in source.input_specs] == [
        ("pixel_values", (1, 3, 32, 32), "float32")
    ]


def test_declared_inputs_still_win(vit):
    from devicefit.sources import InputSpec

    source = load_source(str(vit), inputs=[InputSpec("pixel_values", (2, 3, 32, 32))])
    assert source.input_specs[0].shape == (2, 3, 32, 32)


def test_a_folder_whose_input_kind_is_unknown_asks_for_input(tmp_path):
    from transformers import WhisperConfig, WhisperForAudioClassification

    config = WhisperConfig(d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                           decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=8,
                           max_source_positions=8, vocab_size=50)  # fmt: skip
    WhisperForAudioClassification(config).save_pretrained(tmp_path / "audio")
    with pytest.raises(DevicefitError, match=r"--input input_features:"):
        load_source(str(tmp_path / "audio"))
