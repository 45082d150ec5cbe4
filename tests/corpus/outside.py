"""Models from outside the repo's zoo and corpus, built the way users write or load them (the outside sweep).

Hugging Face models as their own classes (raw ``ModelOutput`` results, no wrapper), from tiny configs with
weights re-drawn (:func:`tests.corpus.families.randomize`), plus plain PyTorch models users write: a U-Net
with transposed convs and skip concatenation, LSTM / GRU taggers with packed sequences, masked attention with
``einsum`` and ``torch.where``, ``F.scaled_dot_product_attention(is_causal=True)``, a 3-D conv net.

:data:`OUTSIDE` lists each with the verdicts ``devicefit check`` must give (measured by hand against the
interpreter and PyTorch, see docs/coverage.md); ``tests/corpus/test_outside.py`` holds check to them and
``scripts/sweep_check.py`` renders the table in docs/coverage.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tests.corpus.families import randomize, text_inputs

V = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
TX = dict(V, vocab_size=128)


def _px(size: int = 32, ch: int = 3) -> torch.Tensor:
    return torch.randn(1, ch, size, size, generator=torch.Generator().manual_seed(2))


def _t() -> Any:
    import transformers  # NOTE: lazy: collecting the tests must not import transformers

    return transformers


def _hf(cls: str, cfg: str, **kw: Any) -> nn.Module:
    torch.manual_seed(0)
    return randomize(getattr(_t(), cls)(getattr(_t(), cfg)(**kw)))


def make_deit() -> tuple[nn.Module, Any]:
    return _hf(
        "DeiTForImageClassification", "DeiTConfig", image_size=32, patch_size=8, num_labels=5, **V
    ), _px()


def make_focalnet() -> tuple[nn.Module, Any]:
    return _hf(
        "FocalNetForImageClassification",
        "FocalNetConfig",
        image_size=32,
        patch_size=4,
        embed_dim=16,
        depths=[1, 1],
        focal_levels=[2, 2],
        num_labels=5,
    ), _px()


def make_dpt() -> tuple[nn.Module, Any]:
    return _hf(
        "DPTForDepthEstimation",
        "DPTConfig",
        image_size=32,
        patch_size=8,
        backbone_out_indices=[0, 1],
        neck_hidden_sizes=[16, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
        **V,
    ), _px()


def make_glpn() -> tuple[nn.Module, Any]:
    return _hf(
        "GLPNForDepthEstimation",
        "GLPNConfig",
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[16, 32],
        patch_sizes=[7, 3],
        strides=[4, 2],
        num_attention_heads=[1, 2],
        mlp_ratios=[2, 2],
        decoder_hidden_size=16,
    ), _px()


def make_upernet(backbone: str = "ConvNextConfig") -> tuple[nn.Module, Any]:
    """UperNet segmentation on a tiny ConvNeXt (``backbone``: its config class, e.g. ``ConvNextV2Config``)."""
    bb = getattr(_t(), backbone)(
        num_channels=3,
        hidden_sizes=[8, 16, 24, 32],
        depths=[1, 1, 1, 1],
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    return _hf(
        "UperNetForSemanticSegmentation",
        "UperNetConfig",
        backbone_config=bb,
        hidden_size=16,
        auxiliary_in_channels=24,
        num_labels=4,
        use_auxiliary_head=False,
    ), _px()


def make_bit() -> tuple[nn.Module, Any]:
    return _hf(
        "BitForImageClassification",
        "BitConfig",
        embedding_size=16,
        hidden_sizes=[32, 64],
        depths=[1, 1],
        num_groups=4,
        num_labels=5,
    ), _px()


def make_data2vecvision() -> tuple[nn.Module, Any]:
    return _hf(
        "Data2VecVisionForImageClassification",
        "Data2VecVisionConfig",
        image_size=32,
        patch_size=8,
        use_relative_position_bias=True,
        num_labels=5,
        **V,
    ), _px()


def make_cvt() -> tuple[nn.Module, Any]:
    return _hf(
        "CvtForImageClassification",
        "CvtConfig",
        embed_dim=[8, 16, 32],
        num_heads=[1, 2, 4],
        depth=[1, 2, 3],
        drop_path_rate=[0.0, 0.0, 0.0],
        num_labels=5,
    ), _px()


def make_pvt() -> tuple[nn.Module, Any]:
    return _hf(
        "PvtForImageClassification",
        "PvtConfig",
        image_size=32,
        num_encoder_blocks=2,
        depths=[1, 1],
        sequence_reduction_ratios=[2, 1],
        hidden_sizes=[16, 32],
        patch_sizes=[4, 2],
        strides=[4, 2],
        num_attention_heads=[1, 2],
        mlp_ratios=[2, 2],
        num_labels=5,
    ), _px()


def make_pvtv2() -> tuple[nn.Module, Any]:
    return _hf(
        "PvtV2ForImageClassification",
        "PvtV2Config",
        image_size=32,
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[16, 32],
        patch_sizes=[7, 3],
        strides=[4, 2],
        num_attention_heads=[1, 2],
        mlp_ratios=[2, 2],
        num_labels=5,
    ), _px()


def make_swiftformer() -> tuple[nn.Module, Any]:
    return _hf(
        "SwiftFormerForImageClassification",
        "SwiftFormerConfig",
        depths=[1, 1, 1, 1],
        embed_dims=[8, 16, 24, 32],
        num_labels=5,
    ), _px()


def make_hiera() -> tuple[nn.Module, Any]:
    return _hf(
        "HieraForImageClassification",
        "HieraConfig",
        image_size=[32, 32],
        patch_size=[3, 3],
        patch_stride=[2, 2],
        patch_padding=[1, 1],
        embed_dim=16,
        num_heads=[1, 2],
        depths=[1, 1],
        query_stride=[2, 2],
        masked_unit_size=[4, 4],
        num_query_pool=1,
        num_labels=5,
    ), _px()


def make_vitmae() -> tuple[nn.Module, Any]:
    return _hf("ViTMAEModel", "ViTMAEConfig", image_size=32, patch_size=8, mask_ratio=0.0, **V), _px()


def make_siglip() -> tuple[nn.Module, Any]:
    m = _hf(
        "SiglipModel",
        "SiglipConfig",
        text_config=dict(TX, max_position_embeddings=16),
        vision_config=dict(V, image_size=32, patch_size=8),
    )
    ids = text_inputs()["input_ids"]
    return m, {"input_ids": ids, "pixel_values": _px()}


def make_mobilebert() -> tuple[nn.Module, Any]:
    return _hf(
        "MobileBertForSequenceClassification",
        "MobileBertConfig",
        embedding_size=16,
        intra_bottleneck_size=16,
        num_labels=3,
        **TX,
    ), text_inputs()


def make_squeezebert() -> tuple[nn.Module, Any]:
    return _hf(
        "SqueezeBertForSequenceClassification",
        "SqueezeBertConfig",
        embedding_size=32,
        q_groups=2,
        k_groups=2,
        v_groups=2,
        post_attention_groups=2,
        intermediate_groups=2,
        output_groups=2,
        num_labels=3,
        **TX,
    ), text_inputs()


def make_convbert() -> tuple[nn.Module, Any]:
    return _hf(
        "ConvBertForSequenceClassification", "ConvBertConfig", embedding_size=32, num_labels=3, **TX
    ), text_inputs()


def make_fnet() -> tuple[nn.Module, Any]:
    d = dict(TX)
    d.pop("num_attention_heads")
    return _hf(
        "FNetForSequenceClassification", "FNetConfig", num_labels=3, use_tpu_fourier_optimizations=False, **d
    ), {"input_ids": text_inputs()["input_ids"]}


def make_funnel() -> tuple[nn.Module, Any]:
    return _hf(
        "FunnelForSequenceClassification",
        "FunnelConfig",
        vocab_size=128,
        block_sizes=[1, 1],
        d_model=32,
        n_head=4,
        d_head=8,
        d_inner=64,
        num_labels=3,
    ), text_inputs()


def make_debertav2() -> tuple[nn.Module, Any]:
    return _hf(
        "DebertaV2ForSequenceClassification",
        "DebertaV2Config",
        relative_attention=True,
        pos_att_type=["p2c", "c2p"],
        max_relative_positions=32,
        num_labels=3,
        **TX,
    ), text_inputs()


def make_ast() -> tuple[nn.Module, Any]:
    return _hf(
        "ASTForAudioClassification",
        "ASTConfig",
        num_mel_bins=16,
        max_length=32,
        patch_size=8,
        frequency_stride=8,
        time_stride=8,
        num_labels=5,
        **V,
    ), torch.randn(1, 32, 16, generator=torch.Generator().manual_seed(3))


def make_wavlm() -> tuple[nn.Module, Any]:
    return _hf(
        "WavLMForSequenceClassification",
        "WavLMConfig",
        conv_dim=(16, 16),
        conv_stride=(5, 4),
        conv_kernel=(10, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        num_labels=3,
        classifier_proj_size=16,
        **TX,
    ), torch.randn(1, 1600, generator=torch.Generator().manual_seed(3))


def make_sew() -> tuple[nn.Module, Any]:
    return _hf(
        "SEWForSequenceClassification",
        "SEWConfig",
        conv_dim=(16, 16),
        conv_stride=(5, 4),
        conv_kernel=(10, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        squeeze_factor=2,
        num_labels=3,
        classifier_proj_size=16,
        **TX,
    ), torch.randn(1, 1600, generator=torch.Generator().manual_seed(3))


class EncoderOnly(nn.Module):
    """A model's ``encoder`` alone (EnCodec's convolutional encoder + LSTM, the part an app runs on device)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encoder(x)


def make_encodec() -> tuple[nn.Module, Any]:
    m = _hf(
        "EncodecModel",
        "EncodecConfig",
        num_filters=4,
        hidden_size=16,
        upsampling_ratios=[4, 2],
        codebook_size=32,
        num_lstm_layers=1,
        target_bandwidths=[1.5],
        sampling_rate=8000,
    )

    return EncoderOnly(m).eval(), torch.randn(1, 1, 800, generator=torch.Generator().manual_seed(3))


def make_videomae() -> tuple[nn.Module, Any]:
    return _hf(
        "VideoMAEForVideoClassification",
        "VideoMAEConfig",
        image_size=32,
        patch_size=8,
        num_frames=4,
        tubelet_size=2,
        num_labels=5,
        **V,
    ), torch.randn(1, 4, 3, 32, 32, generator=torch.Generator().manual_seed(3))


def _detr(model_class: str, config_class: str, **overrides: Any) -> tuple[nn.Module, Any]:
    """A tiny DETR-family detector (DETR, Conditional DETR and Table Transformer share the config fields) on a
    small ResNet; ``overrides``: config fields set otherwise."""
    bb = _t().ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], out_features=["stage4"]
    )
    return _hf(
        model_class,
        config_class,
        use_timm_backbone=False,
        backbone_config=bb,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        **{"num_queries": 8, "num_labels": 5, **overrides},
    ), _px(64)


def make_detr() -> tuple[nn.Module, Any]:
    return _detr("DetrForObjectDetection", "DetrConfig")


def make_cond_detr() -> tuple[nn.Module, Any]:
    return _detr("ConditionalDetrForObjectDetection", "ConditionalDetrConfig")


def make_rtdetr() -> tuple[nn.Module, Any]:
    bb = _t().RTDetrResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16, 24, 32],
        depths=[1, 1, 1, 1],
        out_features=["stage2", "stage3", "stage4"],
    )
    return _hf(
        "RTDetrForObjectDetection",
        "RTDetrConfig",
        backbone_config=bb,
        encoder_in_channels=[16, 24, 32],
        feat_strides=[8, 16, 32],
        encoder_hidden_dim=32,
        encoder_ffn_dim=64,
        d_model=32,
        decoder_in_channels=[32, 32, 32],
        decoder_ffn_dim=64,
        decoder_layers=1,
        num_queries=8,
        num_labels=5,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        anchor_image_size=[64, 64],
    ), _px(64)


def make_patchtst() -> tuple[nn.Module, Any]:
    return _hf(
        "PatchTSTForPrediction",
        "PatchTSTConfig",
        num_input_channels=3,
        context_length=32,
        patch_length=8,
        patch_stride=8,
        prediction_length=8,
        d_model=16,
        num_attention_heads=2,
        num_hidden_layers=1,
        ffn_dim=32,
    ), torch.randn(1, 32, 3, generator=torch.Generator().manual_seed(3))


# ---- plain PyTorch models users write


class UNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.down1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.down2 = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.ReLU())
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.out = nn.Conv2d(16, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.down1(x)
        return self.out(torch.cat([self.up(self.down2(skip)), skip], dim=1))


def make_unet() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(UNet()), _px()


class PackedTagger(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.rnn = getattr(nn, kind)(16, 16, batch_first=True, bidirectional=True)
        self.head = nn.Linear(32, 5)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(
            self.emb(ids), lengths, batch_first=True, enforce_sorted=False
        )
        out, _ = self.rnn(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        return self.head(out)


def make_lstm_packed() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return PackedTagger("LSTM").eval(), (torch.randint(0, 50, (2, 10)), torch.tensor([10, 7]))


def make_gru_packed() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return PackedTagger("GRU").eval(), (torch.randint(0, 50, (2, 10)), torch.tensor([10, 7]))


class Tagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.rnn = nn.LSTM(16, 16, batch_first=True, num_layers=2)
        self.head = nn.Linear(16, 5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.emb(ids))
        return self.head(out)


def make_lstm() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return Tagger().eval(), torch.randint(0, 50, (2, 10))


class MaskedEinsum(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(16, 16)
        self.k = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        att = torch.einsum("bid,bjd->bij", self.q(x), self.k(x)) / 4.0
        att = att.masked_fill(mask[:, None, :] == 0, float("-inf")).softmax(-1)
        y = torch.einsum("bij,bjd->bid", att, x)
        return torch.where(y > 0, y, 0.1 * y)


def make_where_einsum() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    mask = torch.ones(2, 8, dtype=torch.int64)
    mask[1, 5:] = 0
    return MaskedEinsum().eval(), (torch.randn(2, 8, 16), mask)


class CausalSelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(32, 96)
        self.o = nn.Linear(32, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).view(1, x.shape[1], 3, 4, 8).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o(y.transpose(1, 2).reshape(1, x.shape[1], 32))


def make_sdpa_causal() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(CausalSelfAttention()), torch.randn(1, 12, 32)


class Conv3dNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(3, 8, 3, padding=1), nn.BatchNorm3d(8), nn.ReLU(), nn.MaxPool3d(2),
            nn.Conv3d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1),
        )  # fmt: skip
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).flatten(1))


def make_conv3d() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(Conv3dNet()), torch.randn(1, 3, 8, 16, 16)


@dataclass(frozen=True)
class Outside:
    """One outside model and the verdicts check must give it.

    Attributes:
        name: display name.
        kind: ``vision``, ``text``, ``audio``, ``video``, ``detection``, ``time series`` or ``plain``.
        build: returns ``(module, example inputs)``.
        convert: expected ``convert`` verdict status.
        numerics: expected ``numerics`` verdict status (``pass`` also accepts ``warn``: the untrained warning).
        note: what the row shows, for docs/coverage.md.
        exit: the exit code when check must stop before any verdict (2: the example input is bad input, said
            in one line), else None.
    """

    name: str
    kind: str
    build: Callable[[], tuple[nn.Module, Any]]
    convert: str = "pass"
    numerics: str = "pass"
    note: str = ""
    exit: int | None = None


OUTSIDE: list[Outside] = [
    Outside("DeiT", "vision", make_deit),
    Outside("FocalNet", "vision", make_focalnet),
    Outside("DPT (depth)", "vision", make_dpt),
    Outside("GLPN (depth)", "vision", make_glpn),
    Outside("UperNet + ConvNeXt", "vision", make_upernet),
    Outside("BiT", "vision", make_bit),
    Outside("Data2VecVision", "vision", make_data2vecvision),
    Outside("CvT", "vision", make_cvt),
    Outside("PVT", "vision", make_pvt),
    Outside("PVTv2", "vision", make_pvtv2),
    Outside(
        "SwiftFormer",
        "vision",
        make_swiftformer,
        note="fp16 divergence named at modeling_swiftformer.py (was devicefit's trace call)",
    ),
    Outside(
        "Hiera",
        "vision",
        make_hiera,
        convert="fail",
        numerics="skipped",
        note="rank-6 reshape (mask-unit attention): Core ML's 5-D limit, named at its reshape line",
    ),
    Outside(
        "ViTMAE",
        "vision",
        make_vitmae,
        numerics="fail",
        note="draws torch.rand in eval: 'not verifiable' (was 'conversion problem')",
    ),
    Outside("SigLIP (vision + text)", "vision", make_siglip),
    Outside("MobileBERT", "text", make_mobilebert),
    Outside("SqueezeBERT", "text", make_squeezebert),
    Outside("ConvBERT", "text", make_convbert, note="torch.multiply: alias translation"),
    Outside("FNet (FFT)", "text", make_fnet),
    Outside("Funnel", "text", make_funnel, note="1e6 mask fill: fp16-safe (was an fp16 overflow FAIL)"),
    Outside("DeBERTa-v2 (relative attention)", "text", make_debertav2),
    Outside("AST (audio spectrogram)", "audio", make_ast),
    Outside("WavLM", "audio", make_wavlm),
    Outside("SEW", "audio", make_sew),
    Outside("EnCodec encoder", "audio", make_encodec),
    Outside("VideoMAE (5-D input)", "video", make_videomae),
    Outside("DETR", "detection", make_detr),
    Outside("Conditional DETR", "detection", make_cond_detr),
    Outside(
        "RT-DETR",
        "detection",
        make_rtdetr,
        convert="fail",
        numerics="skipped",
        note="outer of int x float: rescued; then deformable attention's rank-6 view, named at its line",
    ),
    Outside("PatchTST", "time series", make_patchtst, note="Tensor.unfold: rescued"),
    Outside("U-Net (transposed conv, skip concat)", "plain", make_unet),
    Outside("masked attention (einsum, where, masked_fill -inf)", "plain", make_where_einsum),
    Outside("SDPA is_causal=True", "plain", make_sdpa_causal),
    Outside("3-D conv net", "plain", make_conv3d, note="AdaptiveAvgPool3d: rescued"),
    Outside(
        "LSTM tagger",
        "plain",
        make_lstm,
        note="exit 1 from the neural_engine verdict: the LSTM (98% of FLOPs) predicted to fall back from the NE",
    ),
    Outside(
        "LSTM tagger, packed sequences",
        "plain",
        make_lstm_packed,
        numerics="fail",
        note="coremltools' packed LSTM is inconsistent: conversion problem at the LSTM line, exit 1 (was exit 2)",
    ),
    Outside(
        "GRU tagger, packed sequences",
        "plain",
        make_gru_packed,
        convert="fail",
        numerics="skipped",
        note="aten::gru on a packed sequence: listed with what to do",
    ),
]
