"""Outside models, round 5: architectures rounds 1-4 (outside*.py) and the family corpus lack.

Plain PyTorch written the way papers and reference code write it (nothing downloaded; transformers is not
installed): RetNet's retention with its decay mask, a Hyena operator (implicit long filter applied by
``rfft`` / ``irfft``), gMLP's spatial gating, ConvNeXt-V2's global response norm, PoolFormer, a MobileViT
block (unfold to patches by reshape), a DETR-style decoder with learned queries, FiLM conditioning on a second
input, SIREN, a straight-through Gumbel-softmax head in eval, top-2 mixture-of-experts dispatched by
``index_add``, ALiBi attention, sliding-window attention, WaveNet's gated dilated convs, PixelCNN's masked conv,
Swin's shifted windows (``torch.roll``), a multi-resolution hash encoding (integer hashing, with XOR and
without), dense graph
attention (GAT), Transformer-XL's relative shift, CBAM, octave convolution, monotone quantile heads
(``sort``), CRF Viterbi decoding (a Python loop with a backtrace), greedy beam top-k in a loop, a
deformable conv emulated by ``grid_sample``, sparsemax, RealNVP couplings, Sinkhorn matching with dustbins,
AlexNet's LocalResponseNorm, DLRM (``EmbeddingBag`` with offsets), ShuffleNetV2's channel shuffle and local
attention by ``F.unfold``. Models the way users get them slightly off are in
outside5_quirks.py.

:data:`OUTSIDE5` lists both with the verdicts ``devicefit check`` must give; ``tests/corpus/test_outside5.py``
holds check to them.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tests.corpus.families import randomize
from tests.corpus.outside import Outside, _px
from tests.corpus.outside5_quirks import QUIRKS5


def _gen(seed: int = 5) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _seq(batch: int = 1, length: int = 16, dim: int = 16) -> torch.Tensor:
    return torch.randn(batch, length, dim, generator=_gen())


# ---- sequence mixers


class Retention(nn.Module):
    """RetNet's parallel retention: per-head decay gamma, D[n, m] = gamma^(n-m) for n >= m, else 0; xPos-free."""

    def __init__(self, d: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.q, self.k, self.v, self.g = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.out = nn.Linear(d, d, bias=False)
        self.norm = nn.GroupNorm(heads, d)
        gammas = 1 - torch.exp2(-5 - torch.arange(heads, dtype=torch.float))
        self.register_buffer("log_gamma", torch.log(gammas))
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.heads
        q, k, v = (p(x).view(b, n, h, d // h).transpose(1, 2) for p in (self.q, self.k, self.v))
        idx = torch.arange(n, device=x.device)
        diff = (idx[:, None] - idx[None, :]).float()
        decay = torch.exp(self.log_gamma[:, None, None] * diff) * (diff >= 0)
        retention = (q @ k.transpose(-1, -2)) * decay / math.sqrt(d // h)
        y = (retention @ v).transpose(1, 2).reshape(b * n, d)
        y = self.norm(y).view(b, n, d)
        return self.out(F.silu(self.g(x)) * y)


def make_retnet() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(Retention()), _seq()


class Hyena(nn.Module):
    """A Hyena operator of order 2: short depthwise conv on projections, an implicit long filter (an MLP over
    positional features, exponentially modulated) applied as an FFT convolution of length 2L."""

    def __init__(self, d: int = 16, length: int = 32, order: int = 2) -> None:
        super().__init__()
        self.in_proj = nn.Linear(d, (order + 1) * d)
        self.short = nn.Conv1d((order + 1) * d, (order + 1) * d, 3, padding=2, groups=(order + 1) * d)
        self.filter = nn.Sequential(nn.Linear(3, 16), nn.SiLU(), nn.Linear(16, order * d))
        self.bias = nn.Parameter(torch.randn(order, d))
        self.out = nn.Linear(d, d)
        t = torch.linspace(0, 1, length)[:, None]
        self.register_buffer(
            "pos", torch.cat([t, torch.sin(2 * math.pi * t), torch.cos(2 * math.pi * t)], -1)
        )
        self.register_buffer(
            "decay", torch.exp(-torch.linspace(0, 1, length)[:, None] * torch.linspace(0.5, 4, d))
        )
        self.order, self.d = order, d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        u = self.short(self.in_proj(x).transpose(1, 2))[..., :n]
        v, *gates = u.split(self.d, dim=1)
        h = self.filter(self.pos[:n]).view(n, self.order, self.d).permute(1, 2, 0)  # (order, d, n)
        for i, gate in enumerate(gates):
            k = h[i] * self.decay[:n].T
            y = torch.fft.irfft(torch.fft.rfft(v, n=2 * n) * torch.fft.rfft(k, n=2 * n), n=2 * n)[..., :n]
            v = gate * (y + v * self.bias[i][:, None])
        return self.out(v.transpose(1, 2))


def make_hyena() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(Hyena()), _seq(length=32)


class GMLPBlock(nn.Module):
    """gMLP: channel expansion, a spatial gating unit (LayerNorm, a Linear across tokens on half the channels
    initialized near identity), multiplied into the other half."""

    def __init__(self, d: int = 16, tokens: int = 16, ffn: int = 32) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.up = nn.Linear(d, 2 * ffn)
        self.sgu_norm = nn.LayerNorm(ffn)
        self.spatial = nn.Conv1d(tokens, tokens, 1)
        self.down = nn.Linear(ffn, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v = F.gelu(self.up(self.norm(x))).chunk(2, dim=-1)
        v = self.spatial(self.sgu_norm(v))
        return x + self.down(u * v)


class GMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(GMLPBlock(), GMLPBlock())
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x).mean(1))


def make_gmlp() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(GMLP()), _seq()


class ALiBiAttention(nn.Module):
    """Causal attention with ALiBi: a per-head linear distance penalty (slopes 2^(-8i/h)), no position
    embeddings; the mask is built from ``arange`` in forward."""

    def __init__(self, d: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.register_buffer("slopes", torch.tensor([2 ** (-8 * (i + 1) / heads) for i in range(heads)]))
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        pos = torch.arange(n, device=x.device)
        distance = (pos[None, :] - pos[:, None]).clamp(max=0)  # -(i - j) below the diagonal
        bias = self.slopes[:, None, None] * distance
        bias = bias.masked_fill(pos[None, :] > pos[:, None], float("-inf"))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads) + bias
        y = att.softmax(-1) @ v
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class ALiBiLM(nn.Module):
    def __init__(self, vocab: int = 64, d: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList([ALiBiAttention(d), ALiBiAttention(d)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        for layer in self.layers:
            x = x + layer(x)
        return self.head(self.norm(x))


def make_alibi() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(ALiBiLM()), torch.randint(0, 64, (1, 12), generator=_gen())


class SlidingWindowAttention(nn.Module):
    """Mistral-style local attention: a causal band of ``window`` tokens from ``triu`` / ``tril`` of ones,
    applied through ``F.scaled_dot_product_attention(attn_mask=bool)``."""

    def __init__(self, d: int = 32, heads: int = 4, window: int = 4) -> None:
        super().__init__()
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.heads, self.window = heads, window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        ones = torch.ones(n, n, dtype=torch.bool, device=x.device)
        band = torch.tril(ones) & torch.triu(ones, diagonal=-(self.window - 1))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=band)
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


def make_sliding_window() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(nn.Sequential(SlidingWindowAttention(), nn.GELU(), SlidingWindowAttention())), _seq(
        dim=32
    )


class RelShiftAttention(nn.Module):
    """Transformer-XL attention: content + position terms (u, v biases), the position scores aligned by the
    pad-and-reshape relative shift."""

    def __init__(self, d: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.qkv, self.r_proj, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d, bias=False), nn.Linear(d, d)
        self.u = nn.Parameter(torch.randn(heads, d // heads))
        self.v = nn.Parameter(torch.randn(heads, d // heads))
        self.heads, self.d = heads, d

    @staticmethod
    def rel_shift(x: torch.Tensor) -> torch.Tensor:
        b, h, q, k = x.shape
        x = F.pad(x, (1, 0))
        x = x.view(b, h, k + 1, q)
        return x[:, :, 1:].view(b, h, q, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        h, dh = self.heads, self.d // self.heads
        pos = torch.arange(n - 1, -1, -1.0, device=x.device)
        inv = 1 / (10000 ** (torch.arange(0, self.d, 2.0, device=x.device) / self.d))
        sinusoid = torch.cat([torch.sin(pos[:, None] * inv), torch.cos(pos[:, None] * inv)], -1)
        r = self.r_proj(sinusoid).view(n, h, dh)
        q, k, v = self.qkv(x).view(b, n, 3, h, dh).unbind(2)
        ac = torch.einsum("bihd,bjhd->bhij", q + self.u, k)
        bd = self.rel_shift(torch.einsum("bihd,jhd->bhij", q + self.v, r))
        att = ((ac + bd) / math.sqrt(dh)).softmax(-1)
        return self.out(torch.einsum("bhij,bjhd->bihd", att, v).reshape(b, n, self.d))


def make_transformer_xl() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(RelShiftAttention()), _seq(length=10)


# ---- vision


class GRN(nn.Module):
    """ConvNeXt-V2's global response norm (channels last): L2 over space, divided by its channel mean."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class ConvNeXtV2Block(nn.Module):
    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1, self.grn, self.pw2 = nn.Linear(dim, 4 * dim), GRN(4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.dw(x).permute(0, 2, 3, 1))
        y = self.pw2(self.grn(F.gelu(self.pw1(y))))
        return x + y.permute(0, 3, 1, 2)


def make_convnextv2_grn() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 4, 4), ConvNeXtV2Block(), ConvNeXtV2Block())
    return randomize(net), _px(32)


class PoolFormerBlock(nn.Module):
    """PoolFormer's token mixer: ``AvgPool2d(3, 1, 1, count_include_pad=False)(x) - x``, GroupNorm(1) norms,
    layer scales."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.GroupNorm(1, dim), nn.GroupNorm(1, dim)
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.mlp = nn.Sequential(nn.Conv2d(dim, 4 * dim, 1), nn.GELU(), nn.Conv2d(4 * dim, dim, 1))
        self.scale1 = nn.Parameter(torch.ones(dim, 1, 1))
        self.scale2 = nn.Parameter(torch.ones(dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.scale1 * (self.pool(y) - y)
        return x + self.scale2 * self.mlp(self.norm2(x))


def make_poolformer() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 7, 4, 2), PoolFormerBlock(), PoolFormerBlock())
    return randomize(net), _px(32)


class MobileViTBlock(nn.Module):
    """MobileViT: local conv, unfold into 2x2 patches by reshape / transpose, a transformer over patches of the
    same pixel position, fold back, fuse with the input by concat + conv."""

    def __init__(self, ch: int = 16, d: int = 24, patch: int = 2) -> None:
        super().__init__()
        self.local = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.SiLU(), nn.Conv2d(ch, d, 1))
        layer = nn.TransformerEncoderLayer(d, 2, 48, dropout=0.0, batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.proj = nn.Conv2d(d, ch, 1)
        self.fuse = nn.Conv2d(2 * ch, ch, 3, padding=1)
        self.patch = patch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.local(x)
        b, d, hgt, wid = y.shape
        p = self.patch
        nh, nw = hgt // p, wid // p
        patches = y.reshape(b * d * nh, p, nw, p).transpose(1, 2)  # (b d nh, nw, p, p)
        patches = patches.reshape(b, d, nh * nw, p * p).transpose(1, 3).reshape(b * p * p, nh * nw, d)
        patches = self.transformer(patches)
        y = patches.reshape(b, p * p, nh * nw, d).transpose(1, 3).reshape(b * d * nh, nw, p, p)
        y = y.transpose(1, 2).reshape(b, d, hgt, wid)
        return self.fuse(torch.cat([x, self.proj(y)], 1))


def make_mobilevit() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.SiLU(), MobileViTBlock())
    return randomize(net), _px(32)


class DETRDecoder(nn.Module):
    """DETR's head: a CNN feature map flattened with a learned 2-D position embedding, learned object queries
    through ``nn.TransformerDecoder``, class logits and sigmoid boxes per query."""

    def __init__(self, d: int = 32, queries: int = 10, classes: int = 5) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, d, 3, 2, 1))
        self.row, self.col = nn.Parameter(torch.randn(8, d // 2)), nn.Parameter(torch.randn(8, d // 2))
        self.query = nn.Embedding(queries, d)
        enc = nn.TransformerEncoderLayer(d, 4, 64, dropout=0.0, batch_first=True)
        dec = nn.TransformerDecoderLayer(d, 4, 64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(enc, 1, enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(dec, 2)
        self.cls, self.box = (
            nn.Linear(d, classes + 1),
            nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 4)),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.backbone(x)
        b, d, h, w = f.shape
        pos = torch.cat([self.col[:w][None].expand(h, w, -1), self.row[:h][:, None].expand(h, w, -1)], -1)
        memory = self.encoder(f.flatten(2).transpose(1, 2) + pos.reshape(1, h * w, d))
        tgt = self.query.weight[None].expand(b, -1, -1)
        hs = self.decoder(tgt, memory)
        return self.cls(hs), self.box(hs).sigmoid()


def make_detr_decoder() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(DETRDecoder()), _px(32)


class SwinWindowAttention(nn.Module):
    """Swin's shifted-window block: ``torch.roll`` by half a window, window partition, a relative position
    bias table indexed by a precomputed index buffer, the shift mask, roll back."""

    def __init__(self, dim: int = 16, heads: int = 2, window: int = 4, size: int = 8, shift: int = 2) -> None:
        super().__init__()
        self.norm, self.qkv, self.proj = nn.LayerNorm(dim), nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.table = nn.Parameter(torch.randn((2 * window - 1) ** 2, heads) * 0.5)
        coords = torch.stack(
            torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        ).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + window - 1
        self.register_buffer("index", rel[..., 0] * (2 * window - 1) + rel[..., 1])
        img = torch.zeros(1, size, size, 1)
        cnt = 0
        for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
                img[:, hs, ws, :] = cnt
                cnt += 1
        windows = self._partition(img, window).squeeze(-1)
        mask = windows[:, None, :] - windows[:, :, None]
        self.register_buffer("mask", mask.masked_fill(mask != 0, -100.0))
        self.heads, self.window, self.shift = heads, window, shift

    @staticmethod
    def _partition(x: torch.Tensor, w: int) -> torch.Tensor:
        b, h, wd, c = x.shape
        x = x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(-1, w * w, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, wd, c = x.shape
        w, s = self.window, self.shift
        y = torch.roll(self.norm(x), shifts=(-s, -s), dims=(1, 2))
        win = self._partition(y, w)  # (b * nW, w*w, c)
        nw = win.shape[0] // b
        q, k, v = self.qkv(win).view(-1, w * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(c // self.heads)
        att = att + self.table[self.index.view(-1)].view(w * w, w * w, -1).permute(2, 0, 1)[None]
        att = att.view(b, nw, self.heads, w * w, w * w) + self.mask[None, :, None]
        att = att.view(-1, self.heads, w * w, w * w).softmax(-1)
        out = self.proj((att @ v).transpose(1, 2).reshape(-1, w * w, c))
        out = out.view(b, h // w, wd // w, w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, wd, c)
        return x + torch.roll(out, shifts=(s, s), dims=(1, 2))


def make_swin_shifted() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(SwinWindowAttention()), torch.randn(1, 8, 8, 16, generator=_gen())


class CBAM(nn.Module):
    """CBAM: channel attention from avg- and max-pooled descriptors through one shared MLP, then spatial
    attention from the channel mean and max through a 7x7 conv."""

    def __init__(self, ch: int = 16, reduction: int = 4) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Conv2d(ch, ch // reduction, 1), nn.ReLU(), nn.Conv2d(ch // reduction, ch, 1)
        )
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ca = torch.sigmoid(self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1)))
        x = x * ca
        sa = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        return x * torch.sigmoid(self.spatial(sa))


def make_cbam() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1), nn.ReLU(), CBAM(), nn.Conv2d(16, 8, 3, 2, 1))
    return randomize(net), _px(16)


class OctaveConv(nn.Module):
    """Octave convolution: high- and low-frequency branches exchanging information by ``avg_pool2d`` and
    nearest ``interpolate(scale_factor=2)``."""

    def __init__(self, cin: int = 16, cout: int = 16, alpha: float = 0.5) -> None:
        super().__init__()
        lin, lout = int(alpha * cin), int(alpha * cout)
        hin, hout = cin - lin, cout - lout
        self.hh, self.hl = nn.Conv2d(hin, hout, 3, padding=1), nn.Conv2d(hin, lout, 3, padding=1)
        self.lh, self.ll = nn.Conv2d(lin, hout, 3, padding=1), nn.Conv2d(lin, lout, 3, padding=1)

    def forward(self, xs: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        xh, xl = xs
        high = self.hh(xh) + F.interpolate(self.lh(xl), scale_factor=2, mode="nearest")
        low = self.ll(xl) + self.hl(F.avg_pool2d(xh, 2))
        return F.relu(high), F.relu(low)


class OctaveNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem_h, self.stem_l = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 8, 3, 2, 1)
        self.oct1, self.oct2 = OctaveConv(), OctaveConv()
        self.head = nn.Conv2d(16, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, low = self.oct2(self.oct1((self.stem_h(x), self.stem_l(x))))
        return self.head(torch.cat([h, F.interpolate(low, scale_factor=2.0)], 1))


def make_octave() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(OctaveNet()), _px(16)


class DeformableConv(nn.Module):
    """Deformable conv v1 emulated without torchvision: offsets from a conv, one ``grid_sample`` per kernel
    tap at the shifted positions, taps stacked and mixed by a 1x1-equivalent ``einsum``."""

    def __init__(self, cin: int = 8, cout: int = 8, k: int = 3) -> None:
        super().__init__()
        self.offset = nn.Conv2d(cin, 2 * k * k, 3, padding=1)
        self.weight = nn.Parameter(torch.randn(cout, cin, k * k))
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        off = self.offset(x).view(b, self.k * self.k, 2, h, w)
        ys, xs = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij")
        taps = []
        r = self.k // 2
        for i in range(self.k * self.k):
            dy, dx = i // self.k - r, i % self.k - r
            py = ys + dy + off[:, i, 0]
            px = xs + dx + off[:, i, 1]
            grid = torch.stack([2 * px / (w - 1) - 1, 2 * py / (h - 1) - 1], dim=-1)
            taps.append(F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True))
        cols = torch.stack(taps, dim=2)  # (b, c, k*k, h, w)
        return torch.einsum("bckhw,ock->bohw", cols, self.weight)


def make_deformable() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), DeformableConv())
    return randomize(net), _px(12)


class PixelCNN(nn.Module):
    """PixelCNN: type-A then type-B masked convs, the mask a buffer multiplied into the weight in forward."""

    class MaskedConv(nn.Conv2d):
        def __init__(self, kind: str, cin: int, cout: int, k: int) -> None:
            super().__init__(cin, cout, k, padding=k // 2)
            mask = torch.ones_like(self.weight)
            mask[:, :, k // 2, k // 2 + (kind == "B") :] = 0
            mask[:, :, k // 2 + 1 :] = 0
            self.register_buffer("mask", mask)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)

    def __init__(self, levels: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            self.MaskedConv("A", 1, 16, 7), nn.ReLU(), self.MaskedConv("B", 16, 16, 3), nn.ReLU(),
            self.MaskedConv("B", 16, 16, 3), nn.ReLU(), nn.Conv2d(16, levels, 1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).log_softmax(1)


def make_pixelcnn() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(PixelCNN()), torch.rand(1, 1, 12, 12, generator=_gen())


# ---- conditioning, implicit nets, audio, graphs


class FiLMNet(nn.Module):
    """FiLM: a conditioning vector (second input) predicts per-channel gamma / beta for each conv block."""

    def __init__(self, cond: int = 6, ch: int = 16) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(3, ch, 3, padding=1), nn.Conv2d(ch, ch, 3, 2, 1)])
        self.norms = nn.ModuleList([nn.BatchNorm2d(ch), nn.BatchNorm2d(ch)])
        self.film = nn.Linear(cond, 2 * 2 * ch)
        self.head = nn.Linear(ch, 3)

    def forward(self, image: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        params = self.film(condition).view(condition.shape[0], 2, 2, -1, 1, 1)
        x = image
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            x = F.relu((1 + params[:, i, 0]) * norm(conv(x)) + params[:, i, 1])
        return self.head(x.mean((2, 3)))


def make_film() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(FiLMNet()), (_px(16), torch.randn(1, 6, generator=_gen()))


class Siren(nn.Module):
    """SIREN: sine activations with omega_0 = 30 and the paper's uniform init (first layer +-1/fan_in)."""

    def __init__(self, hidden: int = 32, layers: int = 3, omega: float = 30.0) -> None:
        super().__init__()
        dims = [2] + [hidden] * layers
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))
        self.out = nn.Linear(hidden, 3)
        with torch.no_grad():
            for i, layer in enumerate(self.layers):
                bound = 1 / layer.in_features if i == 0 else math.sqrt(6 / layer.in_features) / omega
                layer.weight.uniform_(-bound, bound, generator=_gen(i))
        self.omega = omega

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        x = coords
        for layer in self.layers:
            x = torch.sin(self.omega * layer(x))
        return self.out(x)


def make_siren() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return Siren().eval(), torch.rand(1, 64, 2, generator=_gen()) * 2 - 1


class WaveNet(nn.Module):
    """WaveNet: causal dilated Conv1d by left ``F.pad``, gated ``tanh * sigmoid`` units, residual and skip
    1x1 convs summed over layers, a mu-law softmax head."""

    def __init__(self, ch: int = 16, skip: int = 16, dilations: tuple[int, ...] = (1, 2, 4, 8, 1, 2)) -> None:
        super().__init__()
        self.inp = nn.Conv1d(1, ch, 1)
        self.filters = nn.ModuleList(nn.Conv1d(ch, 2 * ch, 2, dilation=d) for d in dilations)
        self.res = nn.ModuleList(nn.Conv1d(ch, ch, 1) for _ in dilations)
        self.skip = nn.ModuleList(nn.Conv1d(ch, skip, 1) for _ in dilations)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(skip, skip, 1), nn.ReLU(), nn.Conv1d(skip, 32, 1))
        self.dilations = dilations

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x, skips = self.inp(audio), 0
        for d, filt, res, skip in zip(self.dilations, self.filters, self.res, self.skip):
            f, g = filt(F.pad(x, (d, 0))).chunk(2, 1)
            z = torch.tanh(f) * torch.sigmoid(g)
            x = x + res(z)
            skips = skips + skip(z)
        return self.head(skips).softmax(1)


def make_wavenet() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(WaveNet()), torch.randn(1, 1, 64, generator=_gen()).tanh()


class HashEncoding(nn.Module):
    """Instant-NGP's multi-resolution hash encoding (2-D): grid corners hashed by ``(x * 1) ^ (y * 2654435761)``
    modulo the table size, bilinear weights, features concatenated over levels, then a tiny MLP."""

    def __init__(
        self, levels: int = 4, table: int = 256, feat: int = 2, base: int = 4, xor: bool = True
    ) -> None:
        super().__init__()
        self.xor = xor
        self.tables = nn.Parameter(torch.randn(levels, table, feat) * 0.1)
        self.register_buffer("res", torch.tensor([base * 2**i for i in range(levels)]))
        self.mlp = nn.Sequential(nn.Linear(levels * feat, 32), nn.ReLU(), nn.Linear(32, 3))
        self.table = table

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        feats = []
        for level in range(self.tables.shape[0]):
            pos = xy * self.res[level]
            cell = pos.floor().long()
            frac = pos - cell
            out = 0
            for dx in (0, 1):
                for dy in (0, 1):
                    cx, cy = cell[..., 0] + dx, cell[..., 1] + dy
                    mixed = cx ^ (cy * 2654435761) if self.xor else cx + cy * 2654435761
                    index = mixed % self.table
                    wx = frac[..., 0] if dx else 1 - frac[..., 0]
                    wy = frac[..., 1] if dy else 1 - frac[..., 1]
                    out = out + (wx * wy)[..., None] * self.tables[level][index]
            feats.append(out)
        return self.mlp(torch.cat(feats, -1))


def make_hash_encoding() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(HashEncoding()).eval(), torch.rand(1, 32, 2, generator=_gen())


def make_hash_sum() -> tuple[nn.Module, Any]:
    """The hash written without XOR (``x + y * 2654435761``): int64 products past int32's range."""
    torch.manual_seed(0)
    return randomize(HashEncoding(xor=False)).eval(), torch.rand(1, 32, 2, generator=_gen())


class GAT(nn.Module):
    """Graph attention (GAT) over a dense adjacency input: e_ij = LeakyReLU(a^T [Wh_i || Wh_j]), masked to
    edges by ``masked_fill(adj == 0, -9e15)``, multi-head, ELU between layers."""

    def __init__(self, fin: int = 8, hidden: int = 8, heads: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.w1, self.w2 = (
            nn.Linear(fin, heads * hidden, bias=False),
            nn.Linear(heads * hidden, classes, bias=False),
        )
        self.a1 = nn.Parameter(torch.randn(heads, 2 * hidden))
        self.a2 = nn.Parameter(torch.randn(1, 2 * classes))
        self.heads, self.hidden = heads, hidden

    @staticmethod
    def attend(h: torch.Tensor, a: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        d = h.shape[-1]
        src, dst = h @ a[:, :d, None], h @ a[:, d:, None]  # (heads, n, 1)
        e = F.leaky_relu(src + dst.transpose(1, 2), 0.2)
        att = e.masked_fill(adj[None] == 0, -9e15).softmax(-1)
        return att @ h

    def forward(self, nodes: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        n = nodes.shape[0]
        h = self.w1(nodes).view(n, self.heads, self.hidden).transpose(0, 1)
        h = F.elu(self.attend(h, self.a1, adj)).transpose(0, 1).reshape(n, -1)
        return self.attend(self.w2(h)[None], self.a2, adj)[0].log_softmax(-1)


def make_gat() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    g = _gen()
    adj = (torch.rand(12, 12, generator=g) < 0.3).float()
    adj = ((adj + adj.T + torch.eye(12)) > 0).float()
    return randomize(GAT()), (torch.randn(12, 8, generator=g), adj)


# ---- heads and decoding


class MonotoneQuantiles(nn.Module):
    """Quantile regression head made non-crossing by ``torch.sort`` of the predicted quantiles."""

    def __init__(self, fin: int = 10, quantiles: int = 5) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(fin, 32), nn.ReLU(), nn.Linear(32, quantiles))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sort(self.body(x), dim=-1).values


def make_quantiles() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(MonotoneQuantiles()), torch.randn(4, 10, generator=_gen())


class GumbelST(nn.Module):
    """A discrete bottleneck in eval: the hard one-hot of the logits (argmax + ``one_hot``) with the
    straight-through trick ``hard - soft.detach() + soft``, then a codebook lookup by matmul."""

    def __init__(self, d: int = 16, codes: int = 8) -> None:
        super().__init__()
        self.logits = nn.Linear(d, codes)
        self.codebook = nn.Linear(codes, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        soft = (self.logits(x) / 0.5).softmax(-1)
        hard = F.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
        return self.codebook(hard - soft.detach() + soft)


def make_gumbel_st() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(GumbelST()), _seq(length=8)


class Top2MoE(nn.Module):
    """Switch/GShard-style top-2 routing by dispatch: per expert, ``nonzero`` picks its tokens, ``index_add_``
    scatters the weighted expert outputs back (data-dependent shapes)."""

    def __init__(self, d: int = 16, experts: int = 4) -> None:
        super().__init__()
        self.router = nn.Linear(d, experts, bias=False)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(d, 32), nn.GELU(), nn.Linear(32, d)) for _ in range(experts)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.reshape(-1, x.shape[-1])
        weights, chosen = self.router(tokens).softmax(-1).topk(2, dim=-1)
        weights = weights / weights.sum(-1, keepdim=True)
        out = torch.zeros_like(tokens)
        for e, expert in enumerate(self.experts):
            rows, slot = torch.nonzero(chosen == e, as_tuple=True)
            out.index_add_(0, rows, expert(tokens[rows]) * weights[rows, slot, None])
        return out.view_as(x)


def make_moe_dispatch() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(Top2MoE()), _seq(length=8)


class CRFTagger(nn.Module):
    """BiLSTM-free CRF tagger: emissions from a conv over embeddings, Viterbi decode as a Python loop over time
    (max over previous tags), then the backtrace by ``gather`` in a reversed loop; returns tags and score."""

    def __init__(self, vocab: int = 50, d: int = 16, tags: int = 5) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.emit = nn.Conv1d(d, tags, 3, padding=1)
        self.transitions = nn.Parameter(torch.randn(tags, tags))
        self.start, self.end = nn.Parameter(torch.randn(tags)), nn.Parameter(torch.randn(tags))

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        em = self.emit(self.embed(ids).transpose(1, 2)).transpose(1, 2)  # (b, n, tags)
        score = self.start + em[:, 0]
        history = []
        for t in range(1, em.shape[1]):
            total = score[:, :, None] + self.transitions[None] + em[:, t, None, :]
            score, best = total.max(dim=1)
            history.append(best)
        score = score + self.end
        best_score, last = score.max(dim=-1)
        path = [last]
        for best in reversed(history):
            last = best.gather(1, last[:, None]).squeeze(1)
            path.append(last)
        return torch.stack(path[::-1], dim=1), best_score


def make_crf() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(CRFTagger()), torch.randint(0, 50, (2, 10), generator=_gen())


class GreedyBeam(nn.Module):
    """A small GRU decoder running a beam search of width 3 for a fixed number of steps: ``topk`` over
    beam x vocab scores, beams reordered by ``index_select`` of the hidden state, tokens by ``gather``."""

    def __init__(self, vocab: int = 20, d: int = 16, beams: int = 3, steps: int = 5) -> None:
        super().__init__()
        self.embed, self.cell, self.out = nn.Embedding(vocab, d), nn.GRUCell(d, d), nn.Linear(d, vocab)
        self.enc = nn.Linear(8, d)
        self.beams, self.steps, self.vocab = beams, steps, vocab

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh(self.enc(features)).expand(self.beams, -1)
        tokens = torch.zeros(self.beams, dtype=torch.long)
        scores = torch.tensor([0.0] + [-1e4] * (self.beams - 1))
        history = []
        for _ in range(self.steps):
            h = self.cell(self.embed(tokens), h)
            total = scores[:, None] + self.out(h).log_softmax(-1)
            scores, flat = total.flatten().topk(self.beams)
            origin, tokens = flat // self.vocab, flat % self.vocab
            h = h.index_select(0, origin)
            history = [seq.index_select(0, origin) for seq in history] + [tokens]
        return torch.stack(history, 1), scores


def make_beam() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(GreedyBeam()), torch.randn(1, 8, generator=_gen())


# ---- sparse heads, flows, matching, recommendation


class Sparsemax(nn.Module):
    """Sparsemax attention weights (Martins & Astudillo): sort descending, ``cumsum``, the support size from a
    comparison with ``arange``, the threshold by ``gather``, ``clamp(min=0)``."""

    def __init__(self, d: int = 16, classes: int = 10) -> None:
        super().__init__()
        self.proj = nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.proj(x)
        z_sorted = torch.sort(z, dim=-1, descending=True).values
        k = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype, device=z.device)
        support = (1 + k * z_sorted) > torch.cumsum(z_sorted, dim=-1)
        k_z = support.sum(dim=-1, keepdim=True)
        tau = (torch.cumsum(z_sorted, dim=-1).gather(-1, k_z - 1) - 1) / k_z.to(z.dtype)
        return torch.clamp(z - tau, min=0)


def make_sparsemax() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(Sparsemax()), _seq(length=6)


class RealNVP(nn.Module):
    """RealNVP affine couplings: a checkerboard of halves by ``torch.flip``, scale by ``tanh`` then ``exp``, the
    log-determinant summed alongside (two outputs)."""

    def __init__(self, d: int = 8, hidden: int = 32, layers: int = 4) -> None:
        super().__init__()
        self.nets = nn.ModuleList(
            nn.Sequential(nn.Linear(d // 2, hidden), nn.ReLU(), nn.Linear(hidden, d)) for _ in range(layers)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = torch.zeros(x.shape[0])
        for net in self.nets:
            a, b = x.chunk(2, dim=-1)
            scale, shift = net(a).chunk(2, dim=-1)
            scale = torch.tanh(scale)
            b = b * torch.exp(scale) + shift
            logdet = logdet + scale.sum(-1)
            x = torch.flip(torch.cat([a, b], -1), dims=[-1])
        return x, logdet


def make_realnvp() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(RealNVP()), torch.randn(4, 8, generator=_gen())


class SinkhornMatcher(nn.Module):
    """SuperGlue-style matching: descriptor scores with a learned dustbin row and column, then log-space
    Sinkhorn normalization (``logsumexp`` in a Python loop of 10 iterations)."""

    def __init__(self, d: int = 16, iters: int = 10) -> None:
        super().__init__()
        self.proj = nn.Linear(d, d)
        self.dustbin = nn.Parameter(torch.tensor(1.0))
        self.iters = iters

    def forward(self, desc0: torch.Tensor, desc1: torch.Tensor) -> torch.Tensor:
        scores = self.proj(desc0) @ self.proj(desc1).transpose(1, 2) / 4.0
        b, m, n = scores.shape
        bins0 = self.dustbin.expand(b, m, 1)
        bins1 = self.dustbin.expand(b, 1, n + 1)
        couplings = torch.cat([torch.cat([scores, bins0], -1), bins1], 1)
        norm = -math.log(m + n)
        log_mu = torch.cat([torch.full((m,), norm), torch.tensor([math.log(n) + norm])])
        log_nu = torch.cat([torch.full((n,), norm), torch.tensor([math.log(m) + norm])])
        u, v = torch.zeros(b, m + 1), torch.zeros(b, n + 1)
        for _ in range(self.iters):
            u = log_mu - torch.logsumexp(couplings + v[:, None, :], dim=2)
            v = log_nu - torch.logsumexp(couplings + u[:, :, None], dim=1)
        return couplings + u[:, :, None] + v[:, None, :] - norm


def make_sinkhorn() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    g = _gen()
    return randomize(SinkhornMatcher()), (
        torch.randn(1, 6, 16, generator=g),
        torch.randn(1, 7, 16, generator=g),
    )


class AlexNetLRN(nn.Module):
    """AlexNet's front: conv, ``nn.LocalResponseNorm(5)``, overlapping ``MaxPool2d(3, 2)``."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 5, 2, 2), nn.ReLU(), nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0),
            nn.MaxPool2d(3, 2), nn.Conv2d(16, 24, 3, padding=1), nn.ReLU(), nn.LocalResponseNorm(5),
            nn.MaxPool2d(3, 2),
        )  # fmt: skip
        self.fc = nn.Linear(24, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(2).mean(-1))


def make_lrn() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(AlexNetLRN()), _px(32)


class DLRM(nn.Module):
    """DLRM: a bottom MLP on dense features, ``nn.EmbeddingBag(mode="sum")`` lookups of multi-hot ids with
    ``offsets``, pairwise dot interactions kept by ``triu_indices``, a top MLP and a sigmoid."""

    def __init__(self, dense: int = 4, d: int = 8, tables: int = 3, rows: int = 40) -> None:
        super().__init__()
        self.bottom = nn.Sequential(nn.Linear(dense, 16), nn.ReLU(), nn.Linear(16, d), nn.ReLU())
        self.bags = nn.ModuleList(nn.EmbeddingBag(rows, d, mode="sum") for _ in range(tables))
        pairs = (tables + 1) * tables // 2
        self.top = nn.Sequential(nn.Linear(d + pairs, 16), nn.ReLU(), nn.Linear(16, 1))
        rows_, cols_ = torch.triu_indices(tables + 1, tables + 1, offset=1)
        self.register_buffer("rows", rows_)
        self.register_buffer("cols", cols_)

    def forward(self, dense: torch.Tensor, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        x = self.bottom(dense)
        feats = [x] + [bag(ids[i], offsets) for i, bag in enumerate(self.bags)]
        t = torch.stack(feats, 1)
        z = t @ t.transpose(1, 2)
        return torch.sigmoid(self.top(torch.cat([x, z[:, self.rows, self.cols]], -1)))


def make_dlrm() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    g = _gen()
    ids = torch.randint(0, 40, (3, 10), generator=g)
    offsets = torch.tensor([0, 3, 4, 8])  # 4 samples holding 3, 1, 4 and 2 ids
    return randomize(DLRM()), (torch.randn(4, 4, generator=g), ids, offsets)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2's unit: channel split, a depthwise branch, concat, then the channel shuffle by
    ``view(b, 2, c/2, h, w).transpose(1, 2)``."""

    def __init__(self, ch: int = 16) -> None:
        super().__init__()
        half = ch // 2
        self.branch = nn.Sequential(
            nn.Conv2d(half, half, 1), nn.BatchNorm2d(half), nn.ReLU(),
            nn.Conv2d(half, half, 3, padding=1, groups=half), nn.BatchNorm2d(half),
            nn.Conv2d(half, half, 1), nn.BatchNorm2d(half), nn.ReLU(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        out = torch.cat([a, self.branch(b)], 1)
        n, c, h, w = out.shape
        return out.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)


def make_shufflenet() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), ShuffleUnit(), ShuffleUnit(), nn.AdaptiveAvgPool2d(1))
    return randomize(net), _px(16)


class LocalUnfoldAttention(nn.Module):
    """Local (halo-style) attention by ``F.unfold``: each pixel attends to its 3x3 neighbourhood's keys."""

    def __init__(self, ch: int = 16, k: int = 3) -> None:
        super().__init__()
        self.q, self.kv = nn.Conv2d(ch, ch, 1), nn.Conv2d(ch, 2 * ch, 1)
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.q(x).view(b, c, 1, h * w)
        kv = F.unfold(self.kv(x), self.k, padding=self.k // 2).view(b, 2 * c, self.k * self.k, h * w)
        key, value = kv.chunk(2, dim=1)
        att = ((q * key).sum(1, keepdim=True) / math.sqrt(c)).softmax(2)
        return x + (att * value).sum(2).view(b, c, h, w)


def make_unfold_attention() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), LocalUnfoldAttention())
    return randomize(net), _px(12)


PLAIN5: list[Outside] = [
    Outside("RetNet retention (decay mask)", "text", make_retnet),
    Outside("Hyena operator (implicit filter, FFT conv)", "text", make_hyena),
    Outside("gMLP spatial gating", "plain", make_gmlp),
    Outside("ALiBi causal LM", "text", make_alibi),
    Outside("sliding-window attention (SDPA bool band)", "plain", make_sliding_window),
    Outside("Transformer-XL relative shift", "text", make_transformer_xl),
    Outside("ConvNeXt-V2 (GRN)", "vision", make_convnextv2_grn),
    Outside("PoolFormer", "vision", make_poolformer),
    Outside("MobileViT block", "vision", make_mobilevit),
    Outside("DETR-style decoder (learned queries)", "detection", make_detr_decoder),
    Outside("Swin shifted windows (torch.roll)", "vision", make_swin_shifted),
    Outside("CBAM", "vision", make_cbam),
    Outside("octave convolution", "vision", make_octave),
    Outside("deformable conv (grid_sample taps)", "vision", make_deformable),
    Outside("PixelCNN masked convs", "vision", make_pixelcnn),
    Outside(
        "FiLM conditioning (two inputs, rank-6 view)",
        "vision",
        make_film,
        convert="fail",
        numerics="skipped",
        note="view(b, 2, 2, -1, 1, 1): Core ML's 5-D limit, named at its line with how to merge axes",
    ),
    Outside("SIREN (sin, omega 30)", "plain", make_siren),
    Outside("WaveNet gated dilated convs", "audio", make_wavenet),
    Outside(
        "hash encoding (int XOR)",
        "plain",
        make_hash_encoding,
        convert="fail",
        numerics="skipped",
        note="Core ML has no integer bitwise ops: aten::__xor__ named at its line, with the arithmetic to use",
    ),
    Outside(
        "hash encoding (int64 products past int32)",
        "plain",
        make_hash_sum,
        numerics="fail",
        note="int32 wraps where int64 does not: conversion problem named at the hash line (was the weight line "
        "of another loop iteration: provenance matched nodes by order, localisation only the last run of a line)",
    ),
    Outside("GAT (dense adjacency)", "plain", make_gat),
    Outside("monotone quantiles (sort)", "time series", make_quantiles),
    Outside("straight-through one-hot (argmax)", "plain", make_gumbel_st),
    Outside("top-2 MoE dispatch (nonzero, index_add_)", "plain", make_moe_dispatch),
    Outside("CRF Viterbi decode (loops, gather)", "text", make_crf),
    Outside("beam search loop (topk, index_select)", "text", make_beam),
    Outside(
        "sparsemax (sort, cumsum, gather)",
        "plain",
        make_sparsemax,
        note="bool mask .sum() is an integer count: rescued (was convert FAIL: the fp32 count refused as an index)",
    ),
    Outside("RealNVP couplings (flip, exp, log-det)", "plain", make_realnvp),
    Outside("Sinkhorn matching (logsumexp loop, dustbins)", "vision", make_sinkhorn),
    Outside("AlexNet LocalResponseNorm", "vision", make_lrn),
    Outside(
        "DLRM (EmbeddingBag offsets, triu interactions)",
        "plain",
        make_dlrm,
        note="bags declared (bags, D) (was convert FAIL at torch.stack: each bag typed (1, D)); random offsets "
        "the model refuses are left out, with a warning",
    ),
    Outside("ShuffleNetV2 channel shuffle", "vision", make_shufflenet),
    Outside("local attention (F.unfold)", "vision", make_unfold_attention),
]

OUTSIDE5: list[Outside] = PLAIN5 + QUIRKS5
