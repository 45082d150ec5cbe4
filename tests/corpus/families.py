"""Tiny models of every mainstream architecture family, with weights that give non-degenerate activations.

Each family builds ``(module, example inputs)``: a transformers model from a tiny config (no download),
weights re-drawn so activations are far from zero (HF's 0.02-std init makes outputs nearly constant),
text inputs with a right-padded attention mask. The module returns the model's main output tensor.
Used by tests/corpus/test_corpus.py and scripts/coverage.py (docs/coverage.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

VOCAB, SEQ, IMAGE = 128, 16, 32
TEXT = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, vocab_size=VOCAB
)
VISION = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)


@dataclass(frozen=True)
class Family:
    """One architecture family of the corpus.

    Attributes:
        name: display name (``"BERT"``).
        group: ``"text"``, ``"decoder"``, ``"audio"`` or ``"vision"``.
        build: returns ``(module, example inputs as name -> tensor)``.
        fast: part of the default test suite (the rest is marked slow).
    """

    name: str
    group: str
    build: Callable[[], tuple[torch.nn.Module, dict[str, torch.Tensor]]]
    fast: bool = False


class MainOutput(torch.nn.Module):
    """Call a transformers model with keyword inputs and return its first output tensor."""

    def __init__(self, model: torch.nn.Module, **fixed: Any) -> None:
        super().__init__()
        self.model = model.eval()
        self.fixed = fixed

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        out = self.model(**inputs, **self.fixed)
        return out[0]


class TextOutput(MainOutput):
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **self.fixed)[0]


class PixelOutput(MainOutput):
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.model(pixel_values=pixel_values, **self.fixed)[0]


class AudioOutput(MainOutput):
    def forward(self, input_values: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.model(input_values, **self.fixed)[0]


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Re-draw weights: matrices ~ N(0, 1/fan_in), norm scales ~ 1 ± 0.2, biases ~ N(0, 0.1), BN stats sane."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            else:
                p.copy_(1 + torch.randn(p.shape, generator=gen) * 0.2)
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=gen))
            elif name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen) * 0.1)
    return model.eval()


def text_inputs(pad: int = 4, vocab: int = VOCAB, low: int = 3) -> dict[str, torch.Tensor]:
    """Token ids (1, SEQ) and a right-padded attention mask (``pad`` padded positions)."""
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(low, vocab, (1, SEQ), generator=gen, dtype=torch.int32)
    mask = torch.ones(1, SEQ, dtype=torch.int32)
    mask[0, SEQ - pad :] = 0
    return {"input_ids": ids, "attention_mask": mask}


def pixels(size: int = IMAGE, channels: int = 3) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(2)
    return {"pixel_values": torch.randn(1, channels, size, size, generator=gen)}


def _text(model_cls: str, config_cls: str, **config: Any) -> Callable:
    def build() -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
        import transformers

        model = getattr(transformers, model_cls)(getattr(transformers, config_cls)(**config))
        return TextOutput(randomize(model)), text_inputs()

    return build


def _decoder(model_cls: str, config_cls: str, **config: Any) -> Callable:
    def build() -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
        import transformers

        model = getattr(transformers, model_cls)(getattr(transformers, config_cls)(**config))
        return TextOutput(randomize(model), use_cache=False), text_inputs()

    return build


def _vision(model_cls: str, config_cls: str, size: int = IMAGE, **config: Any) -> Callable:
    def build() -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
        import transformers

        model = getattr(transformers, model_cls)(getattr(transformers, config_cls)(**config))
        return PixelOutput(randomize(model)), pixels(size)

    return build


def _audio(model_cls: str, config_cls: str, **config: Any) -> Callable:
    def build() -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
        import transformers

        model = getattr(transformers, model_cls)(getattr(transformers, config_cls)(**config))
        gen = torch.Generator().manual_seed(3)
        return AudioOutput(randomize(model)), {"input_values": torch.randn(1, 1600, generator=gen)}

    return build


def _whisper_encoder() -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    import transformers

    config = transformers.WhisperConfig(
        d_model=32,
        encoder_layers=2,
        encoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_layers=1,
        decoder_attention_heads=4,
        decoder_ffn_dim=64,
        num_mel_bins=16,
        max_source_positions=16,
        vocab_size=VOCAB,
        pad_token_id=1,
        bos_token_id=2,
        eos_token_id=2,
        decoder_start_token_id=2,
    )
    encoder = transformers.WhisperModel(config).get_encoder()
    gen = torch.Generator().manual_seed(4)
    return MainOutput(randomize(encoder)), {"input_features": torch.randn(1, 16, 32, generator=gen)}


_DECODER = dict(TEXT, num_key_value_heads=2)
_AUDIO = dict(
    TEXT,
    conv_dim=(16, 16),
    conv_stride=(5, 4),
    conv_kernel=(10, 4),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
)
_SWIN = dict(image_size=IMAGE, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4)

FAMILIES: list[Family] = [
    Family("BERT", "text", _text("BertModel", "BertConfig", max_position_embeddings=64, **TEXT)),
    Family(
        "DistilBERT",
        "text",
        _text(
            "DistilBertModel",
            "DistilBertConfig",
            dim=32,
            n_layers=2,
            n_heads=4,
            hidden_dim=64,
            vocab_size=VOCAB,
        ),
    ),
    Family("RoBERTa", "text", _text("RobertaModel", "RobertaConfig", max_position_embeddings=64, **TEXT)),
    Family("ALBERT", "text", _text("AlbertModel", "AlbertConfig", embedding_size=16, **TEXT)),
    Family(
        "DeBERTa-v2",
        "text",
        _text(
            "DebertaV2Model",
            "DebertaV2Config",
            relative_attention=True,
            position_buckets=16,
            pos_att_type=["p2c", "c2p"],
            **TEXT,
        ),
    ),
    Family("ELECTRA", "text", _text("ElectraModel", "ElectraConfig", embedding_size=16, **TEXT)),
    Family("MPNet", "text", _text("MPNetModel", "MPNetConfig", **TEXT)),
    Family(
        "CLIP text", "text", _text("CLIPTextModel", "CLIPTextConfig", max_position_embeddings=SEQ, **TEXT)
    ),
    Family("LLaMA", "decoder", _decoder("LlamaForCausalLM", "LlamaConfig", **_DECODER)),
    Family("Qwen2", "decoder", _decoder("Qwen2ForCausalLM", "Qwen2Config", **_DECODER)),
    Family("Mistral", "decoder", _decoder("MistralForCausalLM", "MistralConfig", **_DECODER)),
    Family("Phi", "decoder", _decoder("PhiForCausalLM", "PhiConfig", **TEXT)),
    Family("Gemma", "decoder", _decoder("GemmaForCausalLM", "GemmaConfig", head_dim=8, **_DECODER)),
    Family("GPT-NeoX", "decoder", _decoder("GPTNeoXForCausalLM", "GPTNeoXConfig", **TEXT)),
    Family(
        "OPT",
        "decoder",
        _decoder(
            "OPTForCausalLM",
            "OPTConfig",
            hidden_size=32,
            num_hidden_layers=2,
            ffn_dim=64,
            num_attention_heads=4,
            vocab_size=VOCAB,
            word_embed_proj_dim=32,
            max_position_embeddings=64,
        ),
    ),
    Family(
        "Falcon",
        "decoder",
        _decoder(
            "FalconForCausalLM",
            "FalconConfig",
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            vocab_size=VOCAB,
        ),
    ),
    Family(
        "T5 encoder",
        "text",
        _text(
            "T5EncoderModel",
            "T5Config",
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            vocab_size=VOCAB,
        ),
    ),
    Family(
        "BART",
        "text",
        _text(
            "BartModel",
            "BartConfig",
            d_model=32,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            vocab_size=VOCAB,
            max_position_embeddings=64,
        ),
    ),
    Family("Whisper encoder", "audio", _whisper_encoder),
    Family("wav2vec2", "audio", _audio("Wav2Vec2Model", "Wav2Vec2Config", **_AUDIO)),
    Family("HuBERT", "audio", _audio("HubertModel", "HubertConfig", **_AUDIO)),
    Family("ViT", "vision", _vision("ViTModel", "ViTConfig", image_size=IMAGE, patch_size=8, **VISION)),
    Family("DeiT", "vision", _vision("DeiTModel", "DeiTConfig", image_size=IMAGE, patch_size=8, **VISION)),
    Family(
        "BEiT",
        "vision",
        _vision(
            "BeitModel",
            "BeitConfig",
            image_size=IMAGE,
            patch_size=8,
            use_relative_position_bias=True,
            **VISION,
        ),
    ),
    Family(
        "DINOv2", "vision", _vision("Dinov2Model", "Dinov2Config", image_size=IMAGE, patch_size=8, **VISION)
    ),
    Family("Swin", "vision", _vision("SwinModel", "SwinConfig", **_SWIN)),
    Family("Swinv2", "vision", _vision("Swinv2Model", "Swinv2Config", **_SWIN)),
    Family(
        "ConvNeXt",
        "vision",
        _vision("ConvNextModel", "ConvNextConfig", hidden_sizes=[16, 32], depths=[1, 1], num_stages=2),
    ),
    Family(
        "ConvNeXt v2",
        "vision",
        _vision("ConvNextV2Model", "ConvNextV2Config", hidden_sizes=[16, 32], depths=[1, 1], num_stages=2),
    ),
    Family(
        "ResNet",
        "vision",
        _vision(
            "ResNetModel",
            "ResNetConfig",
            embedding_size=16,
            hidden_sizes=[16, 32],
            depths=[1, 1],
            layer_type="basic",
        ),
        fast=True,
    ),
    Family(
        "RegNet",
        "vision",
        _vision(
            "RegNetModel",
            "RegNetConfig",
            embedding_size=16,
            hidden_sizes=[16, 32],
            depths=[1, 1],
            groups_width=8,
        ),
    ),
    Family(
        "EfficientNet",
        "vision",
        _vision(
            "EfficientNetModel",
            "EfficientNetConfig",
            image_size=IMAGE,
            width_coefficient=0.25,
            depth_coefficient=0.25,
            hidden_dim=320,
        ),
    ),
    Family(
        "MobileNet v1",
        "vision",
        _vision("MobileNetV1Model", "MobileNetV1Config", image_size=IMAGE, depth_multiplier=0.25),
    ),
    Family(
        "MobileNet v2",
        "vision",
        _vision("MobileNetV2Model", "MobileNetV2Config", image_size=IMAGE, depth_multiplier=0.25),
    ),
    Family(
        "MobileViT",
        "vision",
        _vision(
            "MobileViTModel",
            "MobileViTConfig",
            image_size=IMAGE,
            hidden_sizes=[16, 24, 32],
            neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64],
        ),
    ),
    Family(
        "SegFormer",
        "vision",
        _vision(
            "SegformerModel",
            "SegformerConfig",
            num_encoder_blocks=2,
            depths=[1, 1],
            sr_ratios=[2, 1],
            hidden_sizes=[16, 32],
            num_attention_heads=[1, 2],
            patch_sizes=[7, 3],
            strides=[4, 2],
            mlp_ratios=[2, 2],
        ),
    ),
    Family(
        "LeViT",
        "vision",
        _vision(
            "LevitModel",
            "LevitConfig",
            size=64,
            image_size=64,
            hidden_sizes=[32, 48, 64],
            num_attention_heads=[1, 2, 2],
            depths=[1, 1, 1],
            key_dim=[8, 8, 8],
            mlp_ratio=[2, 2, 2],
            attention_ratio=[2, 2, 2],
        ),
    ),
    Family(
        "PoolFormer",
        "vision",
        _vision("PoolFormerModel", "PoolFormerConfig", hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 1, 1]),
    ),
    Family(
        "YOLOS",
        "vision",
        _vision(
            "YolosModel",
            "YolosConfig",
            image_size=[IMAGE, IMAGE],
            patch_size=8,
            num_detection_tokens=5,
            **VISION,
        ),
        fast=True,
    ),
    Family(
        "CLIP vision",
        "vision",
        _vision("CLIPVisionModel", "CLIPVisionConfig", image_size=IMAGE, patch_size=8, **VISION),
    ),
    Family(
        "SigLIP",
        "vision",
        _vision("SiglipVisionModel", "SiglipVisionConfig", image_size=IMAGE, patch_size=8, **VISION),
    ),
]
BY_NAME = {f.name: f for f in FAMILIES}
