"""Outside models, round 3: models the way users hand them over, slightly off the usual path.

A QAT model exported with its fake-quant ops left in, a uint8 HWC image input normalized inside, a float64
model (numpy's default dtype), a mixture of experts routing by ``topk`` + ``gather``, a 0-d output beside a
tensor, ``nn.MultiheadAttention`` returning per-head weights under a key padding mask, PointNet fed points
in millimetres (beyond fp16), a VAE head whose ``exp`` overflows fp16. Listed in
:data:`tests.corpus.outside3.OUTSIDE3`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tests.corpus.families import randomize
from tests.corpus.outside import Outside, _px


def _gen(seed: int = 3) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class QATNet(nn.Module):
    """Fake-quant ops as QAT leaves them: activations per tensor (int8, uint8), weights per channel."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.fake_quantize_per_tensor_affine(x, 0.05, 0, -128, 127)
        scale, zero = torch.full((8,), 0.02), torch.zeros(8, dtype=torch.int32)
        w = torch.fake_quantize_per_channel_affine(self.conv.weight, scale, zero, 0, -128, 127)
        h = F.relu(F.conv2d(x, w, self.conv.bias, padding=1))
        h = torch.fake_quantize_per_tensor_affine(h, 0.05, 0, 0, 255)
        return self.fc(h.mean((2, 3)))


def make_qat() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(QATNet()), _px(16)


class Uint8Image(nn.Module):
    """Takes the uint8 HWC image an app holds; permutes and normalizes inside."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.fc = nn.Linear(8, 3)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = (img.permute(0, 3, 1, 2).float() / 255 - self.mean) / self.std
        return self.fc(F.relu(self.conv(x)).mean((2, 3)))


def make_uint8_image() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    img = torch.randint(0, 256, (1, 16, 16, 3), dtype=torch.uint8, generator=_gen())
    return randomize(Uint8Image()), img


def make_float64() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    return randomize(net).double(), torch.randn(4, 6, dtype=torch.float64, generator=_gen())


class MoE(nn.Module):
    """Top-2 routing over 4 experts: softmax gate, ``topk``, renormalized weights, chosen outputs gathered."""

    def __init__(self, d: int = 8, experts: int = 4) -> None:
        super().__init__()
        self.gate = nn.Linear(d, experts)
        self.experts = nn.ModuleList([nn.Linear(d, d) for _ in range(experts)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, idx = self.gate(x).softmax(-1).topk(2, dim=-1)
        w = w / w.sum(-1, keepdim=True)
        outs = torch.stack([expert(x) for expert in self.experts], -2)
        chosen = torch.gather(outs, -2, idx[..., None].expand(-1, -1, -1, outs.shape[-1]))
        return (chosen * w[..., None]).sum(-2)


def make_moe() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(MoE()), torch.randn(2, 5, 8, generator=_gen())


class ScalarOut(nn.Module):
    """An autoencoder returning its 0-d reconstruction error (an anomaly score) beside the reconstruction."""

    def __init__(self) -> None:
        super().__init__()
        self.enc, self.dec = nn.Linear(8, 4), nn.Linear(4, 8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rec = self.dec(torch.tanh(self.enc(x)))
        return ((rec - x) ** 2).mean(), rec


def make_scalar_out() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(ScalarOut()), torch.randn(3, 8, generator=_gen())


class MHAHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.attn(x, x, x, key_padding_mask=pad, need_weights=True, average_attn_weights=False)


def make_mha_heads() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[1, 5:] = True
    return randomize(MHAHeads()), (torch.randn(2, 7, 16, generator=_gen()), pad)


def make_pointnet_mm() -> tuple[nn.Module, Any]:
    from tests.corpus.outside3 import PointNet  # NOTE: lazy: outside3 imports this module

    torch.manual_seed(0)
    return randomize(PointNet()), torch.randn(2, 3, 64, generator=_gen()) * 3e4  # LiDAR points in millimetres


class VAEHead(nn.Module):
    """A VAE encoder's head: std = exp(0.5 * logvar) and the KL term, with wide log-variances."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logvar = self.fc(x) * 8
        return torch.exp(0.5 * logvar), (logvar.exp() - logvar - 1).sum(-1)


def make_vae_head() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(VAEHead()), torch.randn(4, 16, generator=_gen()) * 2


QUIRKS3: list[Outside] = [
    Outside(
        "QAT fake-quant ops left in", "plain", make_qat, note="fake_quantize per tensor / channel: rescued"
    ),
    Outside("uint8 HWC image input", "plain", make_uint8_image),
    Outside("float64 model", "plain", make_float64),
    Outside("mixture of experts (topk routing)", "plain", make_moe),
    Outside("0-d output beside a tensor", "plain", make_scalar_out),
    Outside("MHA per-head weights + key padding mask", "plain", make_mha_heads),
    Outside(
        "PointNet on millimetre points",
        "plain",
        make_pointnet_mm,
        numerics="fail",
        note="log_softmax rescued (was a 'conversion problem': -103 for -2.9e9 in fp32); the fp16 overflow named "
        "at the input (was its BatchNorm1d)",
    ),
    Outside(
        "VAE head (exp of wide log-variances)",
        "plain",
        make_vae_head,
        numerics="fail",
        note="fp16 overflow at its line; no numpy RuntimeWarning, 'SNR NaN dB' in words",
    ),
]
