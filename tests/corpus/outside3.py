"""Outside models, round 3: architectures rounds 1 and 2 (outside.py, outside2.py) and the family corpus lack.

Plain PyTorch written the way torchvision / papers write it (torchvision is not installed): MobileNetV3 blocks
(hardswish, hardsigmoid squeeze-excite), MBConv with stochastic depth, a YOLO head decoding boxes on a grid,
ESPCN's PixelShuffle, ``nn.Transformer`` pieces with padding and causal masks, ``nn.MultiheadAttention``
returning its weights, a Conformer block, a weight-normed TCN, a CRNN with a CTC head, a GRU seq2seq with
Bahdanau attention decoding greedily, PointNet, a VAE decoder, an MLP-Mixer, a Perceiver's latent
cross-attention. Hugging Face classes not yet swept are in outside3_hf.py; models the way users get them
slightly off (fake-quant ops left in, uint8 / float64 inputs, a 0-d output...) in outside3_quirks.py.

:data:`OUTSIDE3` lists all three with the verdicts ``devicefit check`` must give; ``tests/corpus/test_outside3.py``
holds check to them.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tests.corpus.families import randomize
from tests.corpus.outside import Outside, _px
from tests.corpus.outside3_hf import HF3
from tests.corpus.outside3_quirks import QUIRKS3


def _gen(seed: int = 3) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---- torchvision-style vision models (written out)


class SqueezeExcite(nn.Module):
    """MobileNetV3's SE: avg pool, 1x1 convs, ``hardsigmoid`` gate."""

    def __init__(self, ch: int, squeeze: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(ch, squeeze, 1), nn.Conv2d(squeeze, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, mid: int, cout: int, stride: int, act: type[nn.Module], se: bool) -> None:
        super().__init__()
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = [nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), act()]
        layers += [nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), act()]
        if se:
            layers.append(SqueezeExcite(mid, max(8, mid // 4)))
        layers += [nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.use_res else y


class MobileNetV3(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish())
        self.blocks = nn.Sequential(
            InvertedResidual(16, 16, 16, 2, nn.ReLU, True),
            InvertedResidual(16, 64, 24, 2, nn.ReLU, False),
            InvertedResidual(24, 72, 24, 1, nn.Hardswish, True),
            InvertedResidual(24, 96, 40, 2, nn.Hardswish, True),
        )
        self.last = nn.Sequential(nn.Conv2d(40, 96, 1, bias=False), nn.BatchNorm2d(96), nn.Hardswish())
        self.classifier = nn.Sequential(
            nn.Linear(96, 128), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(128, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.last(self.blocks(self.stem(x)))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(f, 1), 1))


def make_mobilenetv3() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(MobileNetV3()), _px(64)


class StochasticDepth(nn.Module):
    """torchvision.ops.StochasticDepth, row mode: identity in eval, a Bernoulli row mask in training."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, expand: int, stride: int, p: float) -> None:
        super().__init__()
        mid = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.block = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.SiLU(),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.SiLU(),
        )  # fmt: skip
        sq = max(1, cin // 4)
        self.se = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(mid, sq, 1), nn.SiLU(), nn.Conv2d(sq, mid, 1), nn.Sigmoid()
        )
        self.project = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.drop = StochasticDepth(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block(x)
        y = self.project(h * self.se(h))
        return x + self.drop(y) if self.use_res else y


class EfficientNetLite(nn.Module):
    def __init__(self, classes: int = 7) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.SiLU())
        self.blocks = nn.Sequential(
            MBConv(16, 16, 1, 1, 0.05), MBConv(16, 24, 4, 2, 0.1), MBConv(24, 24, 4, 1, 0.15)
        )
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(24, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def make_efficientnet_sd() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(EfficientNetLite()), _px(32)


class YoloHead(nn.Module):
    """A YOLOv5-style neck and detect head: SiLU convs, nearest upsample + concat, sigmoid grid decode."""

    def __init__(self, classes: int = 3, anchors: int = 2) -> None:
        super().__init__()
        self.na, self.no = anchors, classes + 5

        def cbs(cin: int, cout: int, s: int = 1) -> nn.Module:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, s, 1, bias=False), nn.BatchNorm2d(cout), nn.SiLU())

        self.c1, self.c2, self.c3 = cbs(3, 8, 2), cbs(8, 16, 2), cbs(16, 32, 2)
        self.lat = cbs(32 + 16, 16)
        self.detect = nn.ModuleList(
            [nn.Conv2d(16, anchors * self.no, 1), nn.Conv2d(32, anchors * self.no, 1)]
        )
        self.register_buffer(
            "anchor_grid", torch.tensor([[[10.0, 13.0], [16.0, 30.0]], [[30.0, 61.0], [62.0, 45.0]]])
        )
        self.strides = (8, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p3 = self.c2(self.c1(x))
        p4 = self.c3(p3)
        n3 = self.lat(torch.cat([F.interpolate(p4, scale_factor=2.0, mode="nearest"), p3], 1))
        out = []
        for i, feat in enumerate((n3, p4)):
            b, _, h, w = feat.shape
            y = self.detect[i](feat).view(b, self.na, self.no, h, w).permute(0, 1, 3, 4, 2).sigmoid()
            gy, gx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
            grid = torch.stack((gx, gy), 2).view(1, 1, h, w, 2).float()
            xy = (y[..., :2] * 2 - 0.5 + grid) * self.strides[i]
            wh = (y[..., 2:4] * 2) ** 2 * self.anchor_grid[i].view(1, self.na, 1, 1, 2)
            out.append(torch.cat((xy, wh, y[..., 4:]), -1).view(b, -1, self.no))
        return torch.cat(out, 1)


def make_yolo_head() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(YoloHead()), _px(64)


class ESPCN(nn.Module):
    """ESPCN super-resolution: tanh convs, a conv to ``r*r`` channels, ``PixelShuffle(r)``; SRResNet's PReLU."""

    def __init__(self, r: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2), nn.PReLU(16), nn.Conv2d(16, 8, 3, padding=1), nn.Tanh()
        )
        self.up = nn.Sequential(nn.Conv2d(8, r * r, 3, padding=1), nn.PixelShuffle(r))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.up(self.body(x)))


def make_espcn() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(ESPCN()), _px(16, ch=1)


# ---- sequence models from torch.nn pieces


class TorchTransformer(nn.Module):
    """``nn.Transformer`` encoder-decoder: source padding mask (bool), causal target mask, memory padding mask."""

    def __init__(self, vocab: int = 40, d: int = 16) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.tf = nn.Transformer(
            d,
            nhead=2,
            num_encoder_layers=2,
            num_decoder_layers=1,
            dim_feedforward=32,
            dropout=0.1,
            batch_first=True,
        )
        self.out = nn.Linear(d, vocab)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, src_pad: torch.Tensor) -> torch.Tensor:
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
        h = self.tf(
            self.emb(src), self.emb(tgt), tgt_mask=causal, src_key_padding_mask=src_pad,
            memory_key_padding_mask=src_pad, tgt_is_causal=True,
        )  # fmt: skip
        return self.out(h)


def make_torch_transformer() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    g = _gen()
    src, tgt = torch.randint(0, 40, (2, 10), generator=g), torch.randint(0, 40, (2, 6), generator=g)
    pad = torch.zeros(2, 10, dtype=torch.bool)
    pad[1, 7:] = True
    return randomize(TorchTransformer()), (src, tgt, pad)


class MHAWeights(nn.Module):
    """``nn.MultiheadAttention`` returning its head-averaged attention weights (``need_weights=True``)."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
        self.norm = nn.LayerNorm(16)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, w = self.attn(x, x, x, need_weights=True)
        return self.norm(x + y), w


def make_mha_weights() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(MHAWeights()), torch.randn(2, 9, 16, generator=_gen())


class ConformerBlock(nn.Module):
    """Macaron FFNs, MHSA with a learned relative-position bias, conv module (GLU, depthwise Conv1d, BN1d)."""

    def __init__(self, d: int = 16, heads: int = 2, kernel: int = 7, max_rel: int = 8) -> None:
        super().__init__()

        def ffn() -> nn.Module:
            return nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.SiLU(), nn.Linear(2 * d, d))

        self.ff1, self.ff2 = ffn(), ffn()
        self.heads, self.max_rel = heads, max_rel
        self.attn_norm, self.qkv, self.proj = nn.LayerNorm(d), nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.rel = nn.Embedding(2 * max_rel + 1, heads)
        self.conv_norm = nn.LayerNorm(d)
        self.pw1 = nn.Conv1d(d, 2 * d, 1)
        self.dw = nn.Conv1d(d, d, kernel, padding=kernel // 2, groups=d)
        self.bn = nn.BatchNorm1d(d)
        self.pw2 = nn.Conv1d(d, d, 1)
        self.out_norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.ff1(x)
        b, t, d = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).view(b, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        pos = torch.arange(t)
        rel = (pos[None, :] - pos[:, None]).clamp(-self.max_rel, self.max_rel) + self.max_rel
        bias = self.rel(rel).permute(2, 0, 1)[None]
        att = (q @ k.transpose(-1, -2) / math.sqrt(d // self.heads) + bias).softmax(-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(b, t, d))
        c = F.glu(self.pw1(self.conv_norm(x).transpose(1, 2)), dim=1)
        x = x + self.pw2(F.silu(self.bn(self.dw(c)))).transpose(1, 2)
        return self.out_norm(x + 0.5 * self.ff2(x))


def make_conformer() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(ConformerBlock()), torch.randn(1, 20, 16, generator=_gen())


class TCN(nn.Module):
    """Temporal conv net: weight-normed dilated causal Conv1d (left padding, then ``Chomp``), residual 1x1."""

    def __init__(self, cin: int = 4, ch: int = 16, levels: int = 3) -> None:
        super().__init__()
        wn = nn.utils.parametrizations.weight_norm
        self.convs = nn.ModuleList(
            [
                wn(nn.Conv1d(cin if i == 0 else ch, ch, 3, padding=2 * 2**i, dilation=2**i))
                for i in range(levels)
            ]
        )
        self.down = nn.Conv1d(cin, ch, 1)
        self.head = nn.Linear(ch, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[-1]
        h = x
        for i, conv in enumerate(self.convs):
            y = F.relu(conv(h)[..., :t])  # Chomp1d: drop the right padding (causal)
            h = F.relu(y + (self.down(h) if i == 0 else h))
        return self.head(h[..., -1])


def make_tcn() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return TCN().eval(), torch.randn(1, 4, 30, generator=_gen())


class CRNN(nn.Module):
    """Text-line recognizer: conv features -> width as time -> bidirectional LSTM -> ``log_softmax`` (CTC)."""

    def __init__(self, classes: int = 12) -> None:
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d((2, 1)),
        )  # fmt: skip
        self.rnn = nn.LSTM(16 * 4, 16, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.cnn(x)
        b, c, h, w = f.shape
        seq, _ = self.rnn(f.permute(0, 3, 1, 2).reshape(b, w, c * h))
        return F.log_softmax(self.fc(seq), dim=-1)


def make_crnn() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(CRNN()), torch.randn(1, 1, 16, 32, generator=_gen())


class Seq2SeqBahdanau(nn.Module):
    """GRU encoder, GRUCell decoder with additive attention, greedy decoding: argmax fed back for 5 steps."""

    def __init__(self, vocab: int = 30, d: int = 16, steps: int = 5) -> None:
        super().__init__()
        self.steps = steps
        self.emb = nn.Embedding(vocab, d)
        self.enc = nn.GRU(d, d, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * d, d)
        self.wq, self.wk, self.v = nn.Linear(d, d), nn.Linear(2 * d, d), nn.Linear(d, 1, bias=False)
        self.cell = nn.GRUCell(d + 2 * d, d)
        self.out = nn.Linear(d, vocab)

    def forward(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mem, h = self.enc(self.emb(src))
        s = torch.tanh(self.bridge(torch.cat([h[0], h[1]], -1)))
        tok = torch.zeros(src.shape[0], dtype=torch.long)
        logits, tokens = [], []
        for _ in range(self.steps):
            e = self.v(torch.tanh(self.wq(s)[:, None] + self.wk(mem))).squeeze(-1).softmax(-1)
            ctx = (e[..., None] * mem).sum(1)
            s = self.cell(torch.cat([self.emb(tok), ctx], -1), s)
            step = self.out(s)
            tok = step.argmax(-1)
            logits.append(step)
            tokens.append(tok)
        return torch.stack(logits, 1), torch.stack(tokens, 1)


def make_seq2seq() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(Seq2SeqBahdanau()), torch.randint(0, 30, (2, 8), generator=_gen())


class PointNet(nn.Module):
    """PointNet classifier: a T-Net 3x3 transform (``bmm`` + identity), shared Conv1d MLP, max over points."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.tnet = nn.Sequential(
            nn.Conv1d(3, 16, 1), nn.BatchNorm1d(16), nn.ReLU(), nn.Conv1d(16, 32, 1), nn.ReLU()
        )
        self.tfc = nn.Linear(32, 9)
        self.mlp = nn.Sequential(
            nn.Conv1d(3, 16, 1),
            nn.BatchNorm1d(16),
            nn.ReLU(),
            nn.Conv1d(16, 64, 1),
            nn.BatchNorm1d(64),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, classes))

    def forward(self, pts: torch.Tensor) -> torch.Tensor:
        t = self.tfc(torch.max(self.tnet(pts), 2)[0]).view(-1, 3, 3) + torch.eye(3)
        x = torch.bmm(pts.transpose(1, 2), t).transpose(1, 2)
        return F.log_softmax(self.head(self.mlp(x).max(dim=2).values), dim=1)


def make_pointnet() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(PointNet()), torch.randn(2, 3, 64, generator=_gen())


class VAEDecoder(nn.Module):
    """A VAE's decoder as an app ships it: latent -> Linear -> unflatten -> ConvTranspose2d x2 -> sigmoid."""

    def __init__(self, z: int = 8) -> None:
        super().__init__()
        self.fc = nn.Linear(z, 16 * 4 * 4)
        self.up = nn.Sequential(
            nn.Unflatten(1, (16, 4, 4)),
            nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1), nn.BatchNorm2d(8), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(8, 3, 4, stride=2, padding=1, output_padding=0),
        )  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.up(F.relu(self.fc(z))))


def make_vae_decoder() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(VAEDecoder()), torch.randn(2, 8, generator=_gen())


class MixerBlock(nn.Module):
    def __init__(self, tokens: int, d: int) -> None:
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.tok = nn.Sequential(nn.Linear(tokens, 2 * tokens), nn.GELU(), nn.Linear(2 * tokens, tokens))
        self.ch = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.tok(self.n1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.ch(self.n2(x))


class MLPMixer(nn.Module):
    def __init__(self, size: int = 32, patch: int = 8, d: int = 16, classes: int = 5) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, d, patch, patch)
        self.blocks = nn.Sequential(*[MixerBlock((size // patch) ** 2, d) for _ in range(2)])
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.patch(x).flatten(2).transpose(1, 2))
        return self.head(self.norm(h).mean(1))


def make_mlp_mixer() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(MLPMixer()), _px(32)


class Perceiver(nn.Module):
    """A learned latent array cross-attends to a long input (``kdim``/``vdim`` differ), then self-attends."""

    def __init__(self, din: int = 6, d: int = 16, latents: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.latents = nn.Parameter(torch.randn(latents, d))
        self.cross = nn.MultiheadAttention(d, 2, kdim=din, vdim=din, batch_first=True)
        self.self_attn = nn.TransformerEncoderLayer(d, 2, 32, dropout=0.0, batch_first=True, norm_first=True)
        self.head = nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lat = self.latents[None].expand(x.shape[0], -1, -1)
        lat = lat + self.cross(lat, x, x, need_weights=False)[0]
        return self.head(self.self_attn(lat).mean(1))


def make_perceiver() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(Perceiver()), torch.randn(2, 50, 6, generator=_gen())


PLAIN3: list[Outside] = [
    Outside("MobileNetV3 (hardswish, hardsigmoid SE)", "vision", make_mobilenetv3),
    Outside("EfficientNet MBConv + stochastic depth", "vision", make_efficientnet_sd),
    Outside("YOLO neck + grid decode", "detection", make_yolo_head),
    Outside("ESPCN (PixelShuffle, PReLU)", "vision", make_espcn),
    Outside("nn.Transformer (padding + causal masks)", "plain", make_torch_transformer),
    Outside("nn.MultiheadAttention need_weights", "plain", make_mha_weights),
    Outside("Conformer block (relative bias, GLU, BN1d)", "audio", make_conformer),
    Outside("TCN (weight norm, dilated causal)", "plain", make_tcn),
    Outside("CRNN (bi-LSTM, CTC log_softmax)", "plain", make_crnn),
    Outside("GRU seq2seq, Bahdanau, greedy", "plain", make_seq2seq, note="GRUCell's unsafe_chunk: rescued"),
    Outside("PointNet (T-Net, max over points)", "plain", make_pointnet),
    Outside("VAE decoder", "plain", make_vae_decoder),
    Outside("MLP-Mixer", "vision", make_mlp_mixer),
    Outside("Perceiver cross-attention", "plain", make_perceiver),
]

OUTSIDE3: list[Outside] = PLAIN3 + HF3 + QUIRKS3
