"""Outside models, round 3: Hugging Face classes rounds 1-2 and the family corpus lack.

Speech (UniSpeech, the Speech2Text encoder), documents (LayoutLM's box embeddings), efficient attention
(Nystromformer's landmarks, Informer's ProbSparse sampling), time series (PatchTSMixer, Autoformer's FFT
auto-correlation), integer-only BERT (I-BERT), video (TimeSformer) and depth (Depth Anything on DINOv2), from
tiny configs with weights re-drawn. Listed in :data:`tests.corpus.outside3.OUTSIDE3`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tests.corpus.families import text_inputs
from tests.corpus.outside import TX, Outside, V, _hf, _px
from tests.corpus.outside2 import SERIES, forecast_inputs


def _gen(seed: int = 3) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


_AUDIO = dict(conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=16)


def make_unispeech() -> tuple[nn.Module, Any]:
    return _hf(
        "UniSpeechForCTC", "UniSpeechConfig", num_conv_pos_embedding_groups=4, **_AUDIO, **TX
    ), torch.randn(1, 1600, generator=_gen())


def make_speech2text() -> tuple[nn.Module, Any]:
    model = _hf(
        "Speech2TextModel",
        "Speech2TextConfig",
        d_model=16,
        encoder_layers=2,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        input_feat_per_channel=20,
        conv_channels=16,
        max_source_positions=64,
        vocab_size=50,
    )
    return model.get_encoder(), {"input_features": torch.randn(1, 40, 20, generator=_gen())}


def make_layoutlm() -> tuple[nn.Module, Any]:
    inputs = text_inputs()
    g = _gen()
    x0 = torch.randint(0, 500, (1, 16, 2), generator=g)
    wh = torch.randint(1, 400, (1, 16, 2), generator=g)
    inputs["bbox"] = torch.cat([x0, x0 + wh], -1)
    return _hf("LayoutLMForTokenClassification", "LayoutLMConfig", num_labels=4, **TX), inputs


def make_nystromformer() -> tuple[nn.Module, Any]:
    # NOTE: ids only: with an attention mask HF's landmark path mixes [16] and [4] shapes (fails in PyTorch)
    model = _hf(
        "NystromformerForSequenceClassification",
        "NystromformerConfig",
        num_landmarks=4,
        segment_means_seq_len=16,
        conv_kernel_size=3,
        num_labels=2,
        **TX,
    )
    return model, {"input_ids": text_inputs()["input_ids"]}


def make_patchtsmixer() -> tuple[nn.Module, Any]:
    return _hf(
        "PatchTSMixerForPrediction",
        "PatchTSMixerConfig",
        context_length=32,
        prediction_length=8,
        patch_length=8,
        patch_stride=8,
        num_input_channels=3,
        d_model=16,
        num_layers=2,
        mode="mix_channel",
        gated_attn=True,
        self_attn=True,
        self_attn_heads=2,
    ), {"past_values": torch.randn(1, 32, 3, generator=_gen())}


def make_ibert() -> tuple[nn.Module, Any]:
    return _hf("IBertForSequenceClassification", "IBertConfig", num_labels=3, **TX), text_inputs()


def make_autoformer() -> tuple[nn.Module, Any]:
    return _hf("AutoformerModel", "AutoformerConfig", label_length=4, **SERIES), forecast_inputs()


def make_informer() -> tuple[nn.Module, Any]:
    return _hf("InformerModel", "InformerConfig", **SERIES), forecast_inputs()


def make_timesformer() -> tuple[nn.Module, Any]:
    return _hf(
        "TimesformerForVideoClassification",
        "TimesformerConfig",
        image_size=32,
        patch_size=8,
        num_frames=2,
        num_labels=3,
        **V,
    ), torch.randn(1, 2, 3, 32, 32, generator=_gen())


def make_depth_anything() -> tuple[nn.Module, Any]:
    backbone = dict(
        model_type="dinov2",
        image_size=28,
        patch_size=14,
        out_indices=[1, 2, 3, 4],
        reshape_hidden_states=False,
        **dict(V, num_hidden_layers=4),
    )
    return _hf(
        "DepthAnythingForDepthEstimation",
        "DepthAnythingConfig",
        backbone_config=backbone,
        reassemble_hidden_size=32,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
    ), _px(28)


HF3: list[Outside] = [
    Outside("UniSpeech CTC", "audio", make_unispeech),
    Outside("Speech2Text encoder", "audio", make_speech2text),
    Outside(
        "LayoutLM (bbox)",
        "text",
        make_layoutlm,
        note="generated boxes with x1 < x0 left out with a note (was exit 2 'check the values fed')",
    ),
    Outside(
        "Nystromformer",
        "text",
        make_nystromformer,
        convert="fail",
        numerics="skipped",
        note="HF builds a [q, k] mask only under tracing, which its landmark attention cannot add: named at "
        "modeling_nystromformer.py (was a bare RuntimeError), torch's logged tracebacks kept off",
    ),
    Outside("PatchTSMixer", "time series", make_patchtsmixer),
    Outside("I-BERT", "text", make_ibert),
    Outside("Autoformer", "time series", make_autoformer, note="conj + complex mul: rescued"),
    Outside(
        "Informer (ProbSparse)",
        "time series",
        make_informer,
        numerics="fail",
        note="cumsum(dim=-2): rescued; samples keys by torch.randint: 'not verifiable', named at its line",
    ),
    Outside("TimeSformer (video)", "video", make_timesformer),
    Outside(
        "Depth Anything",
        "vision",
        make_depth_anything,
        note="thread-count float noise no longer called 'draws random numbers'",
    ),
]
