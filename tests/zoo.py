"""A model zoo defined in code with random weights, covering the architectures devicefit must run.

Each entry builds a small PyTorch model and example inputs. ``fp16_rel`` / ``fp16_cos`` are the tolerances of the
interpreter's fp16 emulation (fp16-converted model, fp16 arithmetic) against PyTorch in fp32, with the reasoning next to
them: fp16 has a 10-bit mantissa (unit roundoff 2**-11 ~ 4.9e-4), so each rounded op adds ~5e-4 relative error, and
errors grow with depth, with long reductions (layer norm, softmax over many keys, big matmuls) and with recurrences.
Random weights exaggerate this (no trained structure damping it), so these bounds are deliberately not tight.

``bench_inputs`` give a larger batch for ``benchmarks/interp_speed.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ZooEntry:
    name: str
    make: Callable[[], nn.Module]
    inputs: Callable[[int], tuple[torch.Tensor, ...]]  # batch -> example inputs
    fp16_rel: float
    fp16_cos: float
    why: str
    input_names: list[str] = field(default_factory=lambda: ["x"])
    targets: tuple[str, ...] = ("iOS16", "iOS18")
    ops: tuple[str, ...] = ()  # MIL ops the conversion is expected to contain (guards the coverage claim)
    ops18: tuple[str, ...] = ()  # further ops expected at iOS18 only


# ------------------------------------------------------------------ CNNs
class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.down(x))


class ResNet(nn.Module):
    def __init__(self, width: int = 16, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
        )
        self.layers = nn.Sequential(
            BasicBlock(width, width, 1), BasicBlock(width, 2 * width, 2), BasicBlock(2 * width, 4 * width, 2)
        )
        self.fc = nn.Linear(4 * width, classes)

    def forward(self, x):
        y = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int, act: type[nn.Module], se: bool):
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), act()]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            act(),
        ]
        self.body = nn.Sequential(*layers)
        self.se = SqueezeExcite(hidden) if se else nn.Identity()
        self.project = nn.Sequential(nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.project(self.se(self.body(x)))
        return x + y if self.residual else y


class SqueezeExcite(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.fc1 = nn.Conv2d(c, max(c // 4, 8), 1)
        self.fc2 = nn.Conv2d(max(c // 4, 8), c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))


class MobileNet(nn.Module):
    def __init__(self, v3: bool, classes: int = 10):
        super().__init__()
        act: type[nn.Module] = nn.Hardswish if v3 else nn.ReLU6
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), act())
        self.blocks = nn.Sequential(
            InvertedResidual(16, 16, 1, 1, act, se=v3),
            InvertedResidual(16, 24, 2, 4, act, se=False),
            InvertedResidual(24, 24, 1, 3, act, se=v3),
            InvertedResidual(24, 40, 2, 3, act, se=v3),
        )
        self.head = nn.Sequential(nn.Conv2d(40, 64, 1), act())
        self.fc = nn.Linear(64, classes)
        self.drop = nn.Dropout(0.2)

    def forward(self, x):
        y = self.head(self.blocks(self.stem(x)))
        return self.fc(self.drop(y.mean((2, 3))))


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, 4 * dim)
        self.pw2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 0.5))

    def forward(self, x):
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.pw2(F.gelu(self.pw1(self.norm(y))))
        return x + (self.gamma * y).permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    def __init__(self, dim: int = 32, classes: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 4, 4)
        self.stem_norm = nn.GroupNorm(1, dim)  # channels-first LayerNorm as GroupNorm(1): group-norm pieces
        self.blocks = nn.Sequential(ConvNeXtBlock(dim), ConvNeXtBlock(dim))
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        y = self.blocks(self.stem_norm(self.stem(x)))
        return self.head(y.mean((2, 3)))


# ------------------------------------------------------------------ transformers
class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, causal: bool = False):
        super().__init__()
        self.heads, self.causal = heads, causal
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.causal and mask is None)
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x, mask=None):
        x = x + self.attn(self.n1(x), mask)
        return x + self.mlp(self.n2(x))


class ViT(nn.Module):
    def __init__(self, dim: int = 48, depth: int = 2, heads: int = 4, patch: int = 8, image: int = 32):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.ModuleList(EncoderBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        y = self.patch(x).flatten(2).transpose(1, 2)
        y = torch.cat([self.cls.expand(y.shape[0], -1, -1), y], 1) + self.pos
        for blk in self.blocks:
            y = blk(y)
        return self.head(self.norm(y[:, 0]))


class BertEncoder(nn.Module):
    """BERT-style: token + position + segment embeddings, padding mask, post-norm encoder layers."""

    def __init__(self, vocab: int = 100, dim: int = 32, depth: int = 2, heads: int = 4, seq: int = 16):
        super().__init__()
        self.tok, self.pos, self.seg = nn.Embedding(vocab, dim), nn.Embedding(seq, dim), nn.Embedding(2, dim)
        self.norm = nn.LayerNorm(dim, eps=1e-12)
        self.blocks = nn.ModuleList(EncoderBlock(dim, heads) for _ in range(depth))
        self.pool = nn.Linear(dim, dim)

    def forward(self, ids, attention_mask):
        positions = torch.arange(ids.shape[1]).unsqueeze(0)
        y = self.norm(self.tok(ids) + self.pos(positions) + self.seg(torch.zeros_like(ids)))
        # additive mask, -1e4 rather than fp32-min so fp16 does not overflow (ane-notes.md)
        mask = (1.0 - attention_mask[:, None, None, :].to(y.dtype)) * -1e4
        for blk in self.blocks:
            y = blk(y, mask)
        return y, torch.tanh(self.pool(y[:, 0]))


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class DecoderBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.n1, self.n2 = RMSNorm(dim), RMSNorm(dim)
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.o = nn.Linear(dim, dim, bias=False)
        self.gate, self.up, self.down = (
            nn.Linear(dim, 2 * dim, bias=False),
            nn.Linear(dim, 2 * dim, bias=False),
            nn.Linear(2 * dim, dim, bias=False),
        )

    def forward(self, x, keep):
        b, n, d = x.shape
        q, k, v = self.qkv(self.n1(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads)
        scores = torch.where(keep, scores, torch.full_like(scores, -1e4))  # select with a causal+padding mask
        y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)
        x = x + self.o(y)
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class GPTDecoder(nn.Module):
    """GPT/Llama-style decoder: RMSNorm pieces, SwiGLU (silu), causal select mask, cumsum positions,
    gather of the last real token, top-k and argmax of the next-token logits."""

    def __init__(self, vocab: int = 128, dim: int = 32, depth: int = 2, heads: int = 4, seq: int = 16):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, dim), nn.Embedding(seq + 1, dim)
        self.blocks = nn.ModuleList(DecoderBlock(dim, heads) for _ in range(depth))
        self.norm = RMSNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.register_buffer("causal", torch.tril(torch.ones(seq, seq, dtype=torch.bool)))

    def forward(self, ids, attention_mask):
        positions = torch.cumsum(attention_mask, dim=1) * attention_mask  # left-padding aware position ids
        y = self.tok(ids) + self.pos(positions)
        keep = self.causal[None, None] & attention_mask.bool()[:, None, None, :]
        for blk in self.blocks:
            y = blk(y, keep)
        logits = self.lm_head(self.norm(y))
        last = logits[:, -1, :]
        top_values, top_indices = torch.topk(last, 5, dim=-1)
        return logits, top_values, top_indices, torch.argmax(last, dim=-1)


# ------------------------------------------------------------------ U-Net
class UNet(nn.Module):
    def __init__(self, c: int = 8):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())

        self.e1, self.e2, self.e3 = block(3, c), block(c, 2 * c), block(2 * c, 4 * c)
        self.up2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, 2)
        self.d2 = block(4 * c, 2 * c)
        self.d1 = block(3 * c, c)
        self.out = nn.Conv2d(c, 2, 1)

    def forward(self, x):
        s1 = self.e1(x)
        s2 = self.e2(F.max_pool2d(s1, 2))
        b = self.e3(F.max_pool2d(s2, 2))
        y = self.d2(torch.cat([self.up2(b), s2], 1))
        y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        y = self.d1(torch.cat([y, s1], 1))
        coarse = F.interpolate(F.avg_pool2d(y, 4), scale_factor=4, mode="nearest")
        return self.out(y + coarse)


# ------------------------------------------------------------------ recurrent
class LSTMModel(nn.Module):
    def __init__(self, bidirectional: bool = True):
        super().__init__()
        self.rnn = nn.LSTM(16, 24, num_layers=2, batch_first=True, bidirectional=bidirectional)
        self.fc = nn.Linear(48 if bidirectional else 24, 4)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y[:, -1])


class GRUModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(16, 24, batch_first=True)
        self.fc = nn.Linear(24, 4)

    def forward(self, x):
        y, h = self.rnn(x)
        return self.fc(y), h


# ------------------------------------------------------------------ normalization and misc
class NormsAndPixels(nn.Module):
    """batch_norm, instance_norm, group-norm pieces, pad modes, pixel_shuffle / unshuffle, resize."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 16, 3, padding=1)
        self.inorm = nn.InstanceNorm2d(16, affine=True)
        self.gnorm = nn.GroupNorm(4, 16)
        self.bn = nn.BatchNorm2d(4)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        y = self.conv(F.pad(x, (1, 1, 1, 1), mode="reflect")[:, :, 1:-1, 1:-1])
        y = self.gnorm(F.relu(self.inorm(y)))
        y = self.bn(self.shuffle(y))
        y = F.pixel_unshuffle(F.pad(y, (0, 0, 0, 0), mode="constant"), 2)
        return F.interpolate(y, size=(12, 12), mode="bilinear", align_corners=True)


def _img(c: int, h: int) -> Callable[[int], tuple[torch.Tensor, ...]]:
    return lambda b: (torch.randn(b, c, h, h),)


def _tokens(vocab: int, seq: int) -> Callable[[int], tuple[torch.Tensor, ...]]:
    def make(b: int) -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(b)
        ids = torch.randint(0, vocab, (b, seq), generator=g, dtype=torch.int32)
        mask = torch.ones(b, seq, dtype=torch.int32)
        mask[:, : seq // 4] = 0 if b > 0 else 1  # left padding on a quarter of the sequence
        return ids, mask

    return make


ZOO: list[ZooEntry] = [
    ZooEntry(
        "resnet",
        lambda: ResNet(),
        _img(3, 32),
        fp16_rel=2e-2,
        fp16_cos=0.9995,
        why="~10 conv layers with BN folded; errors ~5e-4 per layer accumulate over residual sums",
        ops=("conv", "max_pool", "add", "relu", "linear"),
    ),
    ZooEntry(
        "mobilenet_v2",
        lambda: MobileNet(v3=False),
        _img(3, 32),
        fp16_rel=2e-2,
        fp16_cos=0.9995,
        why="depthwise + pointwise convs, relu6 clipping; shallow, small accumulations",
        ops=("conv", "clip"),
    ),
    ZooEntry(
        "mobilenet_v3",
        lambda: MobileNet(v3=True),
        _img(3, 32),
        fp16_rel=2e-2,
        fp16_cos=0.9995,
        why="adds hardswish and squeeze-excite gates (multiplicative: relative errors add)",
        ops=("conv", "mul", "sigmoid_hard", "thresholded_relu"),
    ),
    ZooEntry(
        "convnext",
        lambda: ConvNeXt(),
        _img(3, 32),
        fp16_rel=3e-2,
        fp16_cos=0.999,
        why="7x7 depthwise conv (49-term sums), layer norm over channels, 4x MLP expansion with gelu",
        ops=("conv", "layer_norm", "gelu", "transpose"),
    ),
    ZooEntry(
        "vit",
        lambda: ViT(),
        _img(3, 32),
        fp16_rel=3e-2,
        fp16_cos=0.999,
        why="attention softmax and layer norms: long reductions in fp16; 2 blocks",
        ops=("layer_norm", "gelu", "concat", "split"),
        ops18=("scaled_dot_product_attention",),
    ),
    ZooEntry(
        "bert_encoder",
        lambda: BertEncoder(),
        _tokens(100, 16),
        fp16_rel=3e-2,
        fp16_cos=0.999,
        why="embedding sums then post-norm layers; -1e4 additive mask is exact in fp16",
        input_names=["ids", "attention_mask"],
        ops=("gather", "layer_norm", "expand_dims"),
        ops18=("scaled_dot_product_attention", "select"),
    ),
    ZooEntry(
        "gpt_decoder",
        lambda: GPTDecoder(),
        _tokens(128, 16),
        fp16_rel=3e-2,
        fp16_cos=0.999,
        why="rms-norm pieces (pow/mean/rsqrt) and 128-way logits; top-k/argmax may flip on near-ties "
        "(the test compares indices only where the top-5 gaps exceed the fp16 error)",
        input_names=["ids", "attention_mask"],
        ops=("gather", "cumsum", "select", "topk", "reduce_argmax", "silu", "rsqrt", "pow", "tile"),
    ),
    ZooEntry(
        "unet",
        lambda: UNet(),
        _img(3, 32),
        fp16_rel=2e-2,
        fp16_cos=0.9995,
        why="encoder/decoder convs with skip concats, transposed conv, bilinear and nearest upsampling",
        ops=("conv_transpose", "concat", "upsample_bilinear", "upsample_nearest_neighbor", "avg_pool"),
    ),
    ZooEntry(
        "lstm",
        lambda: LSTMModel(),
        lambda b: (torch.randn(b, 12, 16),),
        fp16_rel=3e-2,
        fp16_cos=0.999,
        why="12-step recurrence, 2 bidirectional layers: state errors compound over time steps",
        ops=("lstm",),
    ),
    ZooEntry(
        "gru",
        lambda: GRUModel(),
        lambda b: (torch.randn(b, 12, 16),),
        fp16_rel=3e-2,
        fp16_cos=0.999,
        why="12-step GRU recurrence, converted by coremltools into a while_loop over time steps",
        ops=("while_loop",),
    ),
    ZooEntry(
        "norms_pixels",
        lambda: NormsAndPixels(),
        lambda b: (torch.randn(b, 4, 12, 12),),
        fp16_rel=2e-2,
        fp16_cos=0.9995,
        why="instance/group norm statistics over 36-144 values and reflect padding; shallow",
        ops=("instance_norm", "batch_norm", "pad", "pixel_shuffle", "pixel_unshuffle", "real_div", "sqrt"),
    ),
]

BY_NAME = {e.name: e for e in ZOO}


def build(entry: ZooEntry, batch: int = 1, seed: int = 0) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """The entry's model in eval mode (seeded random weights, BN statistics randomised) and inputs."""
    torch.manual_seed(seed)
    model = entry.make().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    torch.manual_seed(seed + 1)
    return model, entry.inputs(batch)
