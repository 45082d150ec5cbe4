"""Tiny model factories for the convert tests (loaded through ``load_source("models.py:<factory>")``)."""

from __future__ import annotations

from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def spec(factory: str) -> str:
    return f"{HERE / 'models.py'}:{factory}"


class ThreeUnsupported(torch.nn.Module):
    """special.ndtri, special.bessel_j0 and special.airy_ai: ops coremltools 9.0 (and devicefit) have no translation
    for."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.proj(x)
        a = torch.special.ndtri(torch.sigmoid(y)) * x  # LINE_NDTRI
        b = torch.special.bessel_j0(y)  # LINE_J0
        c = torch.special.airy_ai(torch.tanh(x) + 2)  # LINE_AIRY
        return a + b + c


def three_unsupported():
    return ThreeUnsupported(), (torch.randn(2, 4),)


class SelfAttention(torch.nn.Module):
    def __init__(self, need_weights: bool = True) -> None:
        super().__init__()
        self.attn = torch.nn.MultiheadAttention(32, 2, batch_first=True)
        self.need_weights = need_weights

    def forward(self, x: torch.Tensor):
        return self.attn(x, x, x, need_weights=self.need_weights)


def mha():
    torch.manual_seed(0)
    return SelfAttention().eval(), (torch.randn(1, 8, 32),)


class PaddedAttention(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = torch.nn.MultiheadAttention(32, 4, batch_first=True)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, key_padding_mask=pad, need_weights=False)[0]


def mha_padded():
    torch.manual_seed(0)
    pad = torch.zeros(2, 8, dtype=torch.bool)
    pad[1, 5:] = True
    return PaddedAttention().eval(), (torch.randn(2, 8, 32), pad)


def encoder():
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(32, 2, 64, batch_first=True)
    return torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval(), (torch.randn(1, 8, 32),)


def encoder_pre_norm_gelu():
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(32, 2, 64, batch_first=True, norm_first=True, activation="gelu")
    return torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval(), (torch.randn(1, 8, 32),)


def tiny_bert_config():
    from transformers import BertConfig

    return BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )


def bert():
    from transformers import BertModel

    torch.manual_seed(0)
    ids = torch.randint(0, 100, (1, 16), dtype=torch.int32)
    mask = torch.ones(1, 16, dtype=torch.int32)
    mask[0, 12:] = 0
    return BertModel(tiny_bert_config()).eval(), {"input_ids": ids, "attention_mask": mask}


class FloatMaskAnd(torch.nn.Module):
    """``&`` of a bool mask with ``new_zeros(dtype=bool)``, which coremltools' new_zeros types as fp32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dropped = (x > 0) & x.new_zeros(x.shape, dtype=torch.bool)  # all False
        return x + dropped.float()


def float_mask_and():
    return FloatMaskAnd(), (torch.randn(2, 6),)


class Classifier(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.head = torch.nn.Linear(4, 5)

    def forward(self, image: torch.Tensor):
        h = torch.relu(self.conv(image)).mean(dim=(2, 3))
        logits = self.head(h)
        return torch.softmax(logits, dim=-1), logits


def classifier():
    torch.manual_seed(0)
    return Classifier().eval(), (torch.rand(1, 3, 16, 16),)


class SeqModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.proj(x), dim=-1)


def seq_model():
    torch.manual_seed(0)
    return SeqModel().eval(), (torch.randn(1, 10, 8),)
