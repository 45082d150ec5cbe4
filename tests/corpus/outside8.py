"""Outside models, round 8: mobile architectures rounds 1-7 (outside*.py) and the family corpus lack.

Plain PyTorch written the way torchvision and the papers' reference code write them (nothing downloaded):
SqueezeNet's Fire modules (ceil-mode pooling), MnasNet, torchvision's ViT encoder block on
``nn.MultiheadAttention`` and an ``nn.TransformerEncoder`` with a padding mask in eval (PyTorch's fast paths),
EfficientViT's ReLU linear attention, MobileNetV4's universal inverted bottleneck with mobile MQA, RepViT,
FastViT's RepMixer and conditional positional encoding, EdgeNeXt's cross-covariance attention, FasterNet's
partial convolution, GhostNetV2's DFC attention, LeViT's attention biases, BlazeFace with its anchors,
RTMPose's SimCC head, U^2-Net's RSU block, DBNet's differentiable binarization, Zero-DCE's curve iterations,
Real-ESRGAN's RRDB, BC-ResNet's sub-spectral norm, a Silero-style VAD with state, BiSeNetV2's guided
aggregation, sentence-embedding mean pooling; and Hugging Face ModernBERT, Swin2SR, ViTPose, OWLv2, Siglip2
(NaFlex), Moonshine's encoder, Marian's encoder, Table Transformer, TextNet, PP-LCNet and CLAP's audio tower
from tiny configs.

:data:`OUTSIDE8` lists them with the verdicts ``devicefit check`` must give; ``tests/corpus/test_outside8.py``
holds check to them.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tests.corpus.families import randomize, text_inputs
from tests.corpus.outside import TX, Outside, V, _detr, _hf, _px, _t
from tests.corpus.outside8_quirks import QUIRKS8


def _gen(seed: int = 8) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """torchvision's ``_make_divisible``: round channels to a multiple of ``divisor``, never below 90%."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _cbr(
    cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: type | None = nn.ReLU
) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False)]
    layers.append(nn.BatchNorm2d(cout))
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


# ---- torchvision-style classifiers


class Fire(nn.Module):
    """torchvision's SqueezeNet Fire module: squeeze 1x1, then 1x1 and 3x3 expands concatenated."""

    def __init__(self, inplanes: int, squeeze: int, e1: int, e3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, e1, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, e3, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat(
            [self.expand1x1_activation(self.expand1x1(x)), self.expand3x3_activation(self.expand3x3(x))], 1
        )


class SqueezeNet(nn.Module):
    """SqueezeNet 1.1 at a quarter width: ceil-mode max pools, dropout + 1x1 conv classifier, global average."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=3, stride=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(16, 4, 16, 16),
            Fire(32, 4, 16, 16),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(32, 8, 32, 32),
            Fire(64, 8, 32, 32),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(64, 12, 48, 48),
        )
        final_conv = nn.Conv2d(96, num_classes, kernel_size=1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=0.5), final_conv, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


def make_squeezenet() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(SqueezeNet()), _px(67)


class _MnasInvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int, expansion: int) -> None:
        super().__init__()
        mid = cin * expansion
        self.apply_residual = cin == cout and stride == 1
        self.layers = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False),
            nn.BatchNorm2d(mid, momentum=1 - 0.9997),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, k, padding=k // 2, stride=stride, groups=mid, bias=False),
            nn.BatchNorm2d(mid, momentum=1 - 0.9997),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, cout, 1, bias=False),
            nn.BatchNorm2d(cout, momentum=1 - 0.9997),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x) + x if self.apply_residual else self.layers(x)


def _mnas_stack(cin: int, cout: int, k: int, stride: int, exp: int, repeats: int) -> nn.Sequential:
    first = _MnasInvertedResidual(cin, cout, k, stride, exp)
    return nn.Sequential(first, *[_MnasInvertedResidual(cout, cout, k, 1, exp) for _ in range(1, repeats)])


class MNASNet(nn.Module):
    """torchvision's MNASNet (alpha 0.5, depths rounded to multiples of 8), truncated to four stacks."""

    def __init__(self, alpha: float = 0.5, num_classes: int = 10) -> None:
        super().__init__()
        depths = [_make_divisible(d * alpha, 8) for d in (32, 16, 24, 40, 80)]
        self.layers = nn.Sequential(
            nn.Conv2d(3, depths[0], 3, padding=1, stride=2, bias=False),
            nn.BatchNorm2d(depths[0]),
            nn.ReLU(inplace=True),
            nn.Conv2d(depths[0], depths[0], 3, padding=1, stride=1, groups=depths[0], bias=False),
            nn.BatchNorm2d(depths[0]),
            nn.ReLU(inplace=True),
            nn.Conv2d(depths[0], depths[1], 1, bias=False),
            nn.BatchNorm2d(depths[1]),
            _mnas_stack(depths[1], depths[2], 3, 2, 3, 2),
            _mnas_stack(depths[2], depths[3], 5, 2, 3, 2),
            _mnas_stack(depths[3], depths[4], 5, 2, 6, 2),
            nn.Conv2d(depths[4], 64, 1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Sequential(nn.Dropout(p=0.2, inplace=True), nn.Linear(64, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.layers(x).mean([2, 3]))


def make_mnasnet() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(MNASNet()), _px(64)


class TVEncoderBlock(nn.Module):
    """torchvision's ViT ``EncoderBlock``: ``nn.MultiheadAttention(batch_first=True)`` called with
    ``need_weights=False``, which PyTorch runs by its fused fast path in eval without grad."""

    def __init__(self, heads: int, dim: int, mlp: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(dim, heads, dropout=0.0, batch_first=True)
        self.dropout = nn.Dropout(0.0)
        self.ln_2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Dropout(0.0), nn.Linear(mlp, dim))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        torch._assert(input.dim() == 3, f"Expected (batch_size, seq_length, hidden_dim) got {input.shape}")
        x = self.ln_1(input)
        x, _ = self.self_attention(x, x, x, need_weights=False)
        x = self.dropout(x) + input
        return x + self.mlp(self.ln_2(x))


class TVViT(nn.Module):
    """torchvision's ``VisionTransformer`` at a tiny depth: conv_proj patchify, class token expanded per batch,
    learned position embedding, the class token's logits."""

    def __init__(
        self, image: int = 32, patch: int = 8, dim: int = 32, depth: int = 2, classes: int = 10
    ) -> None:
        super().__init__()
        self.patch_size, self.hidden_dim = patch, dim
        self.conv_proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)
        seq = (image // patch) ** 2 + 1
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.empty(1, seq, dim).normal_(std=0.02))
        self.layers = nn.Sequential(*[TVEncoderBlock(4, dim, 2 * dim) for _ in range(depth)])
        self.ln = nn.LayerNorm(dim, eps=1e-6)
        self.heads = nn.Sequential(nn.Linear(dim, classes))

    def _process_input(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        p = self.patch_size
        torch._assert(h % p == 0, "Wrong image height!")
        n_h, n_w = h // p, w // p
        x = self.conv_proj(x)
        x = x.reshape(n, self.hidden_dim, n_h * n_w)
        return x.permute(0, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._process_input(x)
        n = x.shape[0]
        batch_class_token = self.class_token.expand(n, -1, -1)
        x = torch.cat([batch_class_token, x], dim=1)
        x = self.ln(self.layers(x + self.pos_embedding))
        return self.heads(x[:, 0])


def make_tv_vit() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(TVViT()), _px()


class PaddedEncoder(nn.Module):
    """A text classifier on ``nn.TransformerEncoder`` (``enable_nested_tensor``, norm_first=False) called with a
    ``src_key_padding_mask`` from the attention mask: in eval PyTorch takes its nested-tensor fast path, and the
    padded positions come back as zeros."""

    def __init__(self, vocab: int = 128, dim: int = 32, classes: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)
        layer = nn.TransformerEncoderLayer(dim, 4, 64, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=True)
        self.head = nn.Linear(dim, classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.embed(input_ids), src_key_padding_mask=attention_mask == 0)
        keep = attention_mask.unsqueeze(-1).to(h.dtype)
        return self.head((h * keep).sum(1) / keep.sum(1))


def make_padded_encoder() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(PaddedEncoder()), text_inputs()


# ---- mobile blocks


class LiteMLA(nn.Module):
    """EfficientViT (MIT) lightweight multi-scale linear attention: qkv by 1x1 conv, a 5x5 depthwise + grouped
    1x1 aggregate for a second scale, ReLU kernel, ``F.pad(v, (0, 0, 0, 1), value=1)`` to get the normalizer
    from the same matmul, divided with an eps."""

    def __init__(self, dim: int = 32, head_dim: int = 8, eps: float = 1e-15) -> None:
        super().__init__()
        heads = dim // head_dim
        self.dim, self.eps = head_dim, eps
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=False)
        self.aggreg = nn.Sequential(
            nn.Conv2d(3 * dim, 3 * dim, 5, padding=2, groups=3 * dim, bias=False),
            nn.Conv2d(3 * dim, 3 * dim, 1, groups=3 * heads, bias=False),
        )
        self.proj = nn.Sequential(nn.Conv2d(2 * dim, dim, 1, bias=False), nn.BatchNorm2d(dim))

    def relu_linear_att(self, qkv: torch.Tensor) -> torch.Tensor:
        b, _, h, w = qkv.shape
        qkv = torch.reshape(qkv, (b, -1, 3 * self.dim, h * w))
        q, k, v = qkv[:, :, 0 : self.dim], qkv[:, :, self.dim : 2 * self.dim], qkv[:, :, 2 * self.dim :]
        q, k = F.relu(q), F.relu(k)
        trans_k = k.transpose(-1, -2)
        v = F.pad(v, (0, 0, 0, 1), mode="constant", value=1)
        vk = torch.matmul(v, trans_k)
        out = torch.matmul(vk, q)
        out = out[:, :, :-1] / (out[:, :, -1:] + self.eps)
        return torch.reshape(out, (b, -1, h, w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(x)
        multi = torch.cat([qkv, self.aggreg(qkv)], dim=1)
        return x + self.proj(self.relu_linear_att(multi))


class EfficientViT(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            _cbr(3, 16, stride=2, act=nn.Hardswish), _cbr(16, 32, stride=2, act=nn.Hardswish)
        )
        self.blocks = nn.Sequential(LiteMLA(), _cbr(32, 32, act=nn.Hardswish), LiteMLA())
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


def make_efficientvit() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(EfficientViT()), _px()


class UIB(nn.Module):
    """MobileNetV4's universal inverted bottleneck: optional depthwise before the expansion and between, layer
    scale on the residual."""

    def __init__(self, cin: int, cout: int, start_k: int, mid_k: int, stride: int, expand: float) -> None:
        super().__init__()
        mid = _make_divisible(cin * expand, 8)
        self.start_dw = (
            _cbr(cin, cin, start_k, stride if not mid_k else 1, groups=cin, act=None) if start_k else None
        )
        self.expand = _cbr(cin, mid, 1)
        self.middle_dw = _cbr(mid, mid, mid_k, stride, groups=mid) if mid_k else None
        self.proj = _cbr(mid, cout, 1, act=None)
        self.gamma = nn.Parameter(1e-5 * torch.ones(cout))
        self.residual = cin == cout and stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.start_dw is not None:
            x = self.start_dw(x)
        x = self.expand(x)
        if self.middle_dw is not None:
            x = self.middle_dw(x)
        x = self.proj(x) * self.gamma.view(1, -1, 1, 1)
        return x + shortcut if self.residual else x


class MobileMQA(nn.Module):
    """MobileNetV4's mobile multi-query attention: one shared key / value head downsampled by a stride-2
    depthwise conv, queries with ``num_heads`` heads, the scaled dot product written out."""

    def __init__(self, dim: int = 32, heads: int = 4, key_dim: int = 8) -> None:
        super().__init__()
        self.heads, self.key_dim, self.scale = heads, key_dim, key_dim**-0.5
        self.norm = nn.BatchNorm2d(dim)
        self.query = nn.Conv2d(dim, heads * key_dim, 1, bias=False)
        self.kv_down = _cbr(dim, dim, 3, 2, groups=dim, act=None)
        self.key = nn.Conv2d(dim, key_dim, 1, bias=False)
        self.value = nn.Conv2d(dim, key_dim, 1, bias=False)
        self.out = nn.Conv2d(heads * key_dim, dim, 1, bias=False)
        self.gamma = nn.Parameter(1e-5 * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        y = self.norm(x)
        q = self.query(y).reshape(b, self.heads, self.key_dim, h * w).transpose(-1, -2)
        kv = self.kv_down(y)
        k = self.key(kv).flatten(2).unsqueeze(1)  # b, 1, key_dim, n'
        v = self.value(kv).flatten(2).transpose(-1, -2).unsqueeze(1)
        attn = (q @ k) * self.scale
        o = attn.softmax(dim=-1) @ v  # b, heads, hw, key_dim
        o = o.transpose(-1, -2).reshape(b, self.heads * self.key_dim, h, w)
        return x + self.out(o) * self.gamma.view(1, -1, 1, 1)


class MobileNetV4(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = _cbr(3, 16, stride=2)
        self.blocks = nn.Sequential(
            UIB(16, 24, 3, 3, 2, 4.0),  # ExtraDW
            UIB(24, 24, 0, 3, 1, 2.0),  # IB
            UIB(24, 32, 5, 0, 2, 4.0),  # ConvNext-like
            UIB(32, 32, 0, 0, 1, 2.0),  # FFN
            MobileMQA(),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def make_mobilenetv4() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    m = randomize(MobileNetV4())
    with torch.no_grad():  # layer scales as trained: small but not 1e-5 (that would hide the branches)
        for name, p in m.named_parameters():
            if name.endswith("gamma"):
                p.fill_(0.3)
    return m, _px()


class RepViTBlock(nn.Module):
    """RepViT: a 3x3 depthwise token mixer with a 1x1 depthwise branch and identity (train form), SE, and a
    1x1 channel-mixer FFN with GELU, both residual."""

    def __init__(self, dim: int = 32, se: bool = True) -> None:
        super().__init__()
        self.conv = _cbr(dim, dim, 3, groups=dim, act=None)
        self.conv1 = nn.Conv2d(dim, dim, 1, groups=dim)
        self.bn = nn.BatchNorm2d(dim)
        self.se = (
            nn.Sequential(
                nn.AdaptiveAvgPool2d(1),
                nn.Conv2d(dim, dim // 4, 1),
                nn.ReLU(),
                nn.Conv2d(dim // 4, dim, 1),
                nn.Sigmoid(),
            )
            if se
            else None
        )
        self.ffn = nn.Sequential(_cbr(dim, 2 * dim, 1, act=nn.GELU), _cbr(2 * dim, dim, 1, act=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x) + self.conv1(x) + x)
        if self.se is not None:
            x = x * self.se(x)
        return x + self.ffn(x)


def make_repvit() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    m = nn.Sequential(
        _cbr(3, 16, stride=2, act=nn.GELU),
        _cbr(16, 32, stride=2, act=None),
        RepViTBlock(),
        RepViTBlock(se=False),
    )
    return randomize(m), _px()


class RepMixer(nn.Module):
    """FastViT's RepMixer (train form): ``x + layer_scale * (mixer(x) - norm(x))`` with depthwise conv + BN."""

    def __init__(self, dim: int = 32, k: int = 3) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(dim)
        self.mixer = _cbr(dim, dim, k, groups=dim, act=None)
        self.layer_scale = nn.Parameter(1e-5 * torch.ones((dim, 1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layer_scale * (self.mixer(x) - self.norm(x))


class RepCPE(nn.Module):
    """FastViT's conditional positional encoding: a 7x7 depthwise conv with its input added."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.pe = nn.Conv2d(dim, dim, 7, 1, 3, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pe(x) + x


class FastViT(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            _cbr(3, 32, stride=2, act=nn.GELU), _cbr(32, 32, stride=2, groups=32, act=nn.GELU)
        )
        self.mixers = nn.Sequential(RepMixer(), RepMixer(), RepCPE())
        self.attn_norm = nn.BatchNorm2d(32)
        self.attn = nn.MultiheadAttention(32, 4, batch_first=True)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mixers(self.stem(x))
        t = self.attn_norm(x).flatten(2).transpose(1, 2)
        t = t + self.attn(t, t, t)[0]
        return self.head(t.mean(1))


def make_fastvit() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    m = randomize(FastViT())
    with torch.no_grad():
        for mod in m.mixers:
            if isinstance(mod, RepMixer):
                mod.layer_scale.fill_(0.5)
    return m, _px()


class XCA(nn.Module):
    """EdgeNeXt's cross-covariance attention (from XCiT): attention over channels, q and k L2-normalized along
    tokens, a learned per-head temperature."""

    def __init__(self, dim: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0].transpose(-2, -1), qkv[1].transpose(-2, -1), qkv[2].transpose(-2, -1)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1)) * self.temperature
        attn = attn.softmax(dim=-1)
        x = (attn @ v).permute(0, 3, 1, 2).reshape(b, n, c)
        return self.proj(x)


class SDTA(nn.Module):
    """EdgeNeXt's split depth-wise transpose attention: Res2Net-style channel splits each through a depthwise
    conv added to the previous, then XCA on tokens with layer scales, then an inverted MLP."""

    def __init__(self, dim: int = 32, scales: int = 2) -> None:
        super().__init__()
        self.width = max(math.ceil(dim / scales), dim // scales)
        self.nums = 1 if scales == 1 else scales - 1
        self.convs = nn.ModuleList(
            [nn.Conv2d(self.width, self.width, 3, padding=1, groups=self.width) for _ in range(self.nums)]
        )
        self.norm_xca = nn.LayerNorm(dim, eps=1e-6)
        self.gamma_xca = nn.Parameter(0.5 * torch.ones(dim))
        self.xca = XCA(dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(0.5 * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inp = x
        spx = torch.split(x, self.width, 1)
        sp, out = spx[0], spx[0]
        for i in range(self.nums):
            sp = spx[i] if i == 0 else sp + spx[i]
            sp = self.convs[i](sp)
            out = sp if i == 0 else torch.cat((out, sp), 1)
        x = torch.cat((out, spx[self.nums]), 1)
        b, c, h, w = x.shape
        x = x.reshape(b, c, h * w).permute(0, 2, 1)
        x = x + self.gamma_xca * self.xca(self.norm_xca(x))
        x = x.reshape(b, h, w, c)
        x = self.pwconv2(self.act(self.pwconv1(self.norm(x))))
        x = (self.gamma * x).permute(0, 3, 1, 2)
        return inp + x


def make_edgenext() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 32, 4, 4), SDTA(), SDTA(scales=3))
    return randomize(m), _px()


class PConv(nn.Module):
    """FasterNet's partial convolution in its inference form: a clone, then a 3x3 conv written back into the
    first quarter of the channels by slice assignment."""

    def __init__(self, dim: int = 32, n_div: int = 4) -> None:
        super().__init__()
        self.dim_conv3 = dim // n_div
        self.partial_conv3 = nn.Conv2d(self.dim_conv3, self.dim_conv3, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()  # keep the original input intact for the residual connection later
        x[:, : self.dim_conv3, :, :] = self.partial_conv3(x[:, : self.dim_conv3, :, :])
        return x


class FasterNetBlock(nn.Module):
    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.spatial_mixing = PConv(dim)
        self.mlp = nn.Sequential(_cbr(dim, 2 * dim, 1), nn.Conv2d(2 * dim, dim, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.spatial_mixing(x))


def make_fasternet() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(3, 32, 4, 4, bias=False), nn.BatchNorm2d(32), FasterNetBlock(), FasterNetBlock()
    )
    return randomize(m), _px()


class GhostV2(nn.Module):
    """GhostNetV2's ghost module with DFC attention: a primary 1x1 conv, cheap depthwise features, and a
    decoupled fully connected attention on a 2x average-pooled copy ((1, 5) then (5, 1) depthwise convs),
    sigmoid, nearest-upsampled back to the output's size and sliced to the output channels."""

    def __init__(self, cin: int = 16, cout: int = 32) -> None:
        super().__init__()
        self.oup = cout
        init = math.ceil(cout / 2)
        self.primary_conv = _cbr(cin, init, 1)
        self.cheap_operation = _cbr(init, init, 3, groups=init)
        self.short_conv = nn.Sequential(
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.Conv2d(cout, cout, (1, 5), padding=(0, 2), groups=cout, bias=False),
            nn.BatchNorm2d(cout),
            nn.Conv2d(cout, cout, (5, 1), padding=(2, 0), groups=cout, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.short_conv(F.avg_pool2d(x, kernel_size=2, stride=2))
        x1 = self.primary_conv(x)
        x2 = self.cheap_operation(x1)
        out = torch.cat([x1, x2], dim=1)
        return out[:, : self.oup, :, :] * F.interpolate(
            torch.sigmoid(res), size=(out.shape[-2], out.shape[-1]), mode="nearest"
        )


def make_ghostnetv2() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    m = nn.Sequential(_cbr(3, 16, stride=2), GhostV2(16, 32), GhostV2(32, 24))
    return randomize(m), _px(30)


class LeViTAttention(nn.Module):
    """LeViT attention: BN-folded linear layers, per-head attention biases over all pairs of positions indexed
    by ``attention_biases[:, attention_bias_idxs]`` (a buffer of offsets), hardswish before the projection."""

    def __init__(
        self, dim: int = 32, key_dim: int = 8, heads: int = 4, ratio: int = 2, resolution: int = 4
    ) -> None:
        super().__init__()
        self.heads, self.key_dim, self.scale = heads, key_dim, key_dim**-0.5
        self.d = ratio * key_dim
        self.qkv = nn.Sequential(nn.Linear(dim, heads * (2 * key_dim + self.d), bias=False))
        self.qkv_bn = nn.BatchNorm1d(heads * (2 * key_dim + self.d))
        self.proj = nn.Sequential(nn.Hardswish(), nn.Linear(heads * self.d, dim))
        pos = torch.stack(
            torch.meshgrid(torch.arange(resolution), torch.arange(resolution), indexing="ij")
        ).flatten(1)
        rel = (pos[..., :, None] - pos[..., None, :]).abs()
        rel = (rel[0] * resolution) + rel[1]
        self.attention_biases = nn.Parameter(torch.zeros(heads, resolution**2))
        self.register_buffer("attention_bias_idxs", rel, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv_bn(self.qkv(x).flatten(0, 1)).reshape(b, n, self.heads, -1)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.d], dim=3)
        q, k, v = q.permute(0, 2, 1, 3), k.permute(0, 2, 1, 3), v.permute(0, 2, 1, 3)
        attn = q @ k.transpose(-2, -1) * self.scale + self.attention_biases[:, self.attention_bias_idxs]
        x = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, self.heads * self.d)
        return self.proj(x)


class LeViT(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            _cbr(3, 16, stride=2, act=nn.Hardswish),
            _cbr(16, 32, stride=2, act=nn.Hardswish),
            _cbr(32, 32, stride=2, act=None),
        )
        self.attn = LeViTAttention()
        self.mlp = nn.Sequential(nn.Linear(32, 64), nn.Hardswish(), nn.Linear(64, 32))
        self.head = nn.Linear(32, 10)
        self.head_dist = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x).flatten(2).transpose(1, 2)
        x = x + self.attn(x)
        x = (x + self.mlp(x)).mean(1)
        return (self.head(x) + self.head_dist(x)) / 2


def make_levit() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(LeViT()), _px()


class BlazeBlock(nn.Module):
    """BlazeFace's block: depthwise 5x5 (stride-2 blocks pad right/bottom by ``F.pad`` and max-pool the
    shortcut), pointwise, and a channel-padded shortcut ``F.pad(h, (0, 0, 0, 0, 0, pad))``."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.stride, self.channel_pad = stride, cout - cin
        padding = 0 if stride == 2 else 2
        if stride == 2:
            self.max_pool = nn.MaxPool2d(kernel_size=stride, stride=stride)
        self.convs = nn.Sequential(
            nn.Conv2d(cin, cin, 5, stride, padding, groups=cin, bias=True), nn.Conv2d(cin, cout, 1, bias=True)
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            h = F.pad(x, (1, 2, 1, 2), "constant", 0)
            x = self.max_pool(x)
        else:
            h = x
        if self.channel_pad > 0:
            x = F.pad(x, (0, 0, 0, 0, 0, self.channel_pad), "constant", 0)
        return self.act(self.convs(h) + x)


class BlazeFace(nn.Module):
    """BlazeFace (front model, 64x64 here): backbone, two heads of 2 and 6 anchors a cell, and the anchor decode
    done in the model as the port to PyTorch does (``x_center = raw / scale * anchor_w + anchor_x``, keypoints
    alike), scores by ``sigmoid(clamp(raw, -100, 100))``."""

    def __init__(self, size: int = 64) -> None:
        super().__init__()
        self.backbone1 = nn.Sequential(
            nn.Conv2d(3, 24, 5, 2, 0, bias=True),
            nn.ReLU(inplace=True),
            BlazeBlock(24, 24),
            BlazeBlock(24, 28),
            BlazeBlock(28, 32, stride=2),
            BlazeBlock(32, 36),
            BlazeBlock(36, 42, stride=2),
            BlazeBlock(42, 48),
        )
        self.backbone2 = nn.Sequential(BlazeBlock(48, 88, stride=2), BlazeBlock(88, 88))
        self.classifier_8 = nn.Conv2d(48, 2, 1, bias=True)
        self.classifier_16 = nn.Conv2d(88, 6, 1, bias=True)
        self.regressor_8 = nn.Conv2d(48, 32, 1, bias=True)
        self.regressor_16 = nn.Conv2d(88, 96, 1, bias=True)
        self.scale = float(size)
        anchors = []
        for stride, per in ((8, 2), (16, 6)):
            cells = size // stride
            for y in range(cells):
                for x in range(cells):
                    anchors += [[(x + 0.5) / cells, (y + 0.5) / cells, 1.0, 1.0]] * per
        self.register_buffer("anchors", torch.tensor(anchors))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.pad(x, (1, 2, 1, 2), "constant", 0)
        b = x.shape[0]
        x = self.backbone1(x)
        h = self.backbone2(x)
        c1 = self.classifier_8(x).permute(0, 2, 3, 1).reshape(b, -1, 1)
        c2 = self.classifier_16(h).permute(0, 2, 3, 1).reshape(b, -1, 1)
        r1 = self.regressor_8(x).permute(0, 2, 3, 1).reshape(b, -1, 16)
        r2 = self.regressor_16(h).permute(0, 2, 3, 1).reshape(b, -1, 16)
        raw_boxes, raw_scores = torch.cat((r1, r2), dim=1), torch.cat((c1, c2), dim=1)
        boxes = torch.zeros_like(raw_boxes)
        a = self.anchors
        x_center = raw_boxes[..., 0] / self.scale * a[:, 2] + a[:, 0]
        y_center = raw_boxes[..., 1] / self.scale * a[:, 3] + a[:, 1]
        w = raw_boxes[..., 2] / self.scale * a[:, 2]
        h_ = raw_boxes[..., 3] / self.scale * a[:, 3]
        boxes[..., 0] = y_center - h_ / 2.0
        boxes[..., 1] = x_center - w / 2.0
        boxes[..., 2] = y_center + h_ / 2.0
        boxes[..., 3] = x_center + w / 2.0
        for k in range(6):
            offset = 4 + k * 2
            boxes[..., offset] = raw_boxes[..., offset] / self.scale * a[:, 2] + a[:, 0]
            boxes[..., offset + 1] = raw_boxes[..., offset + 1] / self.scale * a[:, 3] + a[:, 1]
        scores = raw_scores.clamp(-100.0, 100.0).sigmoid().squeeze(dim=-1)
        return boxes, scores


def make_blazeface() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(BlazeFace()), torch.rand(1, 3, 64, 64, generator=_gen()) * 2 - 1


class ScaleNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.scale, self.eps = dim**-0.5, eps
        self.g = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = torch.norm(x, dim=-1, keepdim=True) * self.scale
        return x / norm.clamp(min=self.eps) * self.g


class GAU(nn.Module):
    """RTMPose's gated attention unit: ScaleNorm, one linear to u / v / base, per-dim offsets for q and k,
    ``relu(qk / sqrt(s)) ** 2`` attention, gated by u, residual with a learned scale."""

    def __init__(self, tokens: int = 17, dim: int = 32, e: int = 64, s: int = 16) -> None:
        super().__init__()
        self.e, self.s = e, s
        self.ln = ScaleNorm(dim)
        self.uv = nn.Linear(dim, 2 * e + s, bias=False)
        self.gamma = nn.Parameter(torch.rand((2, s)))
        self.beta = nn.Parameter(torch.rand((2, s)))
        self.o = nn.Linear(e, dim, bias=False)
        self.res_scale = nn.Parameter(torch.ones(dim))
        self.sqrt_s = math.sqrt(s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.silu(self.uv(self.ln(x)))
        u, v, base = torch.split(y, [self.e, self.e, self.s], dim=2)
        base = base.unsqueeze(2) * self.gamma[None, None, :] + self.beta
        q, k = torch.unbind(base, dim=2)
        qk = torch.bmm(q, k.permute(0, 2, 1))
        kernel = torch.square(F.relu(qk / self.sqrt_s))
        return x * self.res_scale + self.o(u * torch.bmm(kernel, v))


class SimCCHead(nn.Module):
    """RTMPose's RTMCC head: a 7x7 conv to one map per keypoint, flattened, an MLP, a GAU over keypoints, x / y
    classifiers over 2x-split bins, and the SimCC decode (argmax over bins / 2, confidence the max)."""

    def __init__(
        self,
        cin: int = 32,
        joints: int = 17,
        feat: tuple[int, int] = (8, 6),
        bins: tuple[int, int] = (96, 128),
    ) -> None:
        super().__init__()
        self.final_layer = nn.Conv2d(cin, joints, 7, padding=3)
        self.mlp = nn.Sequential(ScaleNorm(feat[0] * feat[1]), nn.Linear(feat[0] * feat[1], 32, bias=False))
        self.gau = GAU(joints)
        self.cls_x = nn.Linear(32, bins[0], bias=False)
        self.cls_y = nn.Linear(32, bins[1], bias=False)

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.final_layer(feats).flatten(2)
        f = self.gau(self.mlp(f))
        simcc_x, simcc_y = self.cls_x(f), self.cls_y(f)
        x_locs, y_locs = simcc_x.argmax(-1), simcc_y.argmax(-1)
        locs = torch.stack((x_locs, y_locs), dim=-1).float() / 2.0
        vals = torch.minimum(simcc_x.amax(-1), simcc_y.amax(-1))
        return locs, vals


class RTMPose(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            _cbr(3, 16, stride=2, act=nn.SiLU),
            _cbr(16, 32, stride=2, act=nn.SiLU),
            _cbr(32, 32, stride=2, act=nn.SiLU),
        )
        self.head = SimCCHead()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.backbone(x))


def make_rtmpose() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(RTMPose()), torch.randn(1, 3, 64, 48, generator=_gen())


class REBNCONV(nn.Module):
    def __init__(self, cin: int, cout: int, dirate: int = 1) -> None:
        super().__init__()
        self.conv_s1 = nn.Conv2d(cin, cout, 3, padding=1 * dirate, dilation=1 * dirate)
        self.bn_s1 = nn.BatchNorm2d(cout)
        self.relu_s1 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu_s1(self.bn_s1(self.conv_s1(x)))


def _upsample_like(src: torch.Tensor, tar: torch.Tensor) -> torch.Tensor:
    return F.interpolate(src, size=tar.shape[2:], mode="bilinear")


class RSU4(nn.Module):
    """U^2-Net's RSU-4: an encoder-decoder inside the block, ceil-mode max pools, a dilated bottom, bilinear
    upsampling to the skip's size, the block's input added."""

    def __init__(self, cin: int = 3, mid: int = 8, cout: int = 16) -> None:
        super().__init__()
        self.rebnconvin = REBNCONV(cin, cout)
        self.rebnconv1 = REBNCONV(cout, mid)
        self.pool1 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.rebnconv2 = REBNCONV(mid, mid)
        self.pool2 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.rebnconv3 = REBNCONV(mid, mid)
        self.rebnconv4 = REBNCONV(mid, mid, dirate=2)
        self.rebnconv3d = REBNCONV(mid * 2, mid)
        self.rebnconv2d = REBNCONV(mid * 2, mid)
        self.rebnconv1d = REBNCONV(mid * 2, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hxin = self.rebnconvin(x)
        hx1 = self.rebnconv1(hxin)
        hx2 = self.rebnconv2(self.pool1(hx1))
        hx3 = self.rebnconv3(self.pool2(hx2))
        hx4 = self.rebnconv4(hx3)
        hx3d = self.rebnconv3d(torch.cat((hx4, hx3), 1))
        hx2d = self.rebnconv2d(torch.cat((_upsample_like(hx3d, hx2), hx2), 1))
        hx1d = self.rebnconv1d(torch.cat((_upsample_like(hx2d, hx1), hx1), 1))
        return hx1d + hxin


class U2NetP(nn.Module):
    """U^2-Net-lite: two RSU stages, side outputs upsampled to the input's size, fused, all sigmoids returned."""

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = RSU4(3, 8, 16)
        self.pool12 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.stage2 = RSU4(16, 8, 16)
        self.side1 = nn.Conv2d(16, 1, 3, padding=1)
        self.side2 = nn.Conv2d(16, 1, 3, padding=1)
        self.outconv = nn.Conv2d(2, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hx1 = self.stage1(x)
        hx2 = self.stage2(self.pool12(hx1))
        d1 = self.side1(hx1)
        d2 = _upsample_like(self.side2(hx2), d1)
        d0 = self.outconv(torch.cat((d1, d2), 1))
        return torch.sigmoid(d0), torch.sigmoid(d1), torch.sigmoid(d2)


def make_u2net() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(U2NetP()), _px(36)


class DBHead(nn.Module):
    """DBNet's head: probability and threshold maps by conv + two stride-2 transposed convs + sigmoid, and the
    differentiable binarization ``1 / (1 + exp(-k (P - T)))`` with k = 50."""

    def __init__(self, cin: int = 32, k: int = 50) -> None:
        super().__init__()
        self.k = k

        def branch() -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cin // 4, 3, padding=1, bias=False),
                nn.BatchNorm2d(cin // 4),
                nn.ReLU(inplace=True),
                nn.ConvTranspose2d(cin // 4, cin // 4, 2, 2),
                nn.BatchNorm2d(cin // 4),
                nn.ReLU(inplace=True),
                nn.ConvTranspose2d(cin // 4, 1, 2, 2),
                nn.Sigmoid(),
            )

        self.binarize, self.thresh = branch(), branch()

    def step_function(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.reciprocal(1 + torch.exp(-self.k * (x - y)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shrink, thresh = self.binarize(x), self.thresh(x)
        return torch.cat((shrink, thresh, self.step_function(shrink, thresh)), dim=1)


class DBNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(_cbr(3, 16, stride=2), _cbr(16, 32, stride=2), _cbr(32, 32))
        self.head = DBHead()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def make_dbnet() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(DBNet()), _px()


class ZeroDCE(nn.Module):
    """Zero-DCE low-light enhancement: a 7-conv net with symmetric skip concatenations gives 24 tanh curve
    maps, applied as 8 iterations of ``x + r * (x^2 - x)``, on an image in [0, 1]."""

    def __init__(self, nf: int = 16) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=True)
        self.e_conv1 = nn.Conv2d(3, nf, 3, 1, 1)
        self.e_conv2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.e_conv3 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.e_conv4 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.e_conv5 = nn.Conv2d(nf * 2, nf, 3, 1, 1)
        self.e_conv6 = nn.Conv2d(nf * 2, nf, 3, 1, 1)
        self.e_conv7 = nn.Conv2d(nf * 2, 24, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x1 = self.relu(self.e_conv1(x))
        x2 = self.relu(self.e_conv2(x1))
        x3 = self.relu(self.e_conv3(x2))
        x4 = self.relu(self.e_conv4(x3))
        x5 = self.relu(self.e_conv5(torch.cat([x3, x4], 1)))
        x6 = self.relu(self.e_conv6(torch.cat([x2, x5], 1)))
        x_r = torch.tanh(self.e_conv7(torch.cat([x1, x6], 1)))
        rs = torch.split(x_r, 3, dim=1)
        for r in rs[:4]:
            x = x + r * (torch.pow(x, 2) - x)
        enhance_image_1 = x
        for r in rs[4:]:
            x = x + r * (torch.pow(x, 2) - x)
        return enhance_image_1, x


def make_zero_dce() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(ZeroDCE()), torch.rand(1, 3, 32, 32, generator=_gen()) * 0.3


class ResidualDenseBlock(nn.Module):
    """ESRGAN's residual dense block: five 3x3 convs each on all earlier features, LeakyReLU 0.2, scaled 0.2."""

    def __init__(self, nf: int = 16, gc: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(nf, gc, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDBNet(nn.Module):
    """Real-ESRGAN's x4 generator at a tiny width: RRDBs, nearest x2 upsampling twice, an image out."""

    def __init__(self, nf: int = 16) -> None:
        super().__init__()
        self.conv_first = nn.Conv2d(3, nf, 3, 1, 1)
        self.body = nn.Sequential(
            *[nn.Sequential(ResidualDenseBlock(nf), ResidualDenseBlock(nf)) for _ in range(2)]
        )
        self.conv_body = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_hr = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, 3, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


def make_rrdbnet() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(RRDBNet()), torch.rand(1, 3, 16, 16, generator=_gen())


class SubSpectralNorm(nn.Module):
    """BC-ResNet's sub-spectral norm: BatchNorm2d over ``C * S`` channels after splitting frequency into S bands."""

    def __init__(self, channels: int, sub_bands: int = 4) -> None:
        super().__init__()
        self.S = sub_bands
        self.bn = nn.BatchNorm2d(channels * sub_bands)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, f, t = x.size()
        x = x.view(n, c * self.S, f // self.S, t)
        return self.bn(x).view(n, c, f, t)


class BCResBlock(nn.Module):
    """BC-ResNet's broadcasted residual block: a frequency-wise depthwise conv with SSN, averaged over
    frequency, a temporal depthwise conv + SiLU + 1x1, broadcast back over frequency and added."""

    def __init__(self, c: int = 16) -> None:
        super().__init__()
        self.f2 = nn.Sequential(
            nn.Conv2d(c, c, (3, 1), padding=(1, 0), groups=c, bias=False), SubSpectralNorm(c)
        )
        self.f1 = nn.Sequential(
            nn.Conv2d(c, c, (1, 3), padding=(0, 1), groups=c, bias=False),
            nn.BatchNorm2d(c),
            nn.SiLU(),
            nn.Conv2d(c, c, 1, bias=False),
            nn.Dropout2d(0.1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = self.f2(x)
        x1 = self.f1(x2.mean(2, keepdim=True))
        return F.relu(x + x2 + x1, inplace=True)


class BCResNet(nn.Module):
    def __init__(self, classes: int = 12) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, stride=(2, 1), padding=(2, 2))
        self.blocks = nn.Sequential(BCResBlock(), BCResBlock())
        self.head = nn.Sequential(nn.Conv2d(16, 16, (5, 5), groups=16, padding=(0, 2)), nn.Conv2d(16, 32, 1))
        self.classifier = nn.Conv2d(32, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.conv1(x)))
        x = x.mean(-1, keepdim=True)
        return self.classifier(x.mean(2, keepdim=True)).squeeze(-1).squeeze(-1)


def make_bcresnet() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(BCResNet()), torch.randn(1, 1, 40, 32, generator=_gen())


class SileroVAD(nn.Module):
    """A Silero-style VAD step: STFT as a strided conv1d with a fixed basis (reflect-padded), magnitude by
    ``sqrt(re^2 + im^2)``, a conv encoder, an ``LSTMCell`` whose state is an input and an output, and a
    sigmoid speech probability."""

    def __init__(self, n_fft: int = 64, hop: int = 32) -> None:
        super().__init__()
        self.hop, self.n_fft = hop, n_fft
        bins = n_fft // 2 + 1
        t = torch.arange(n_fft, dtype=torch.float32)
        f = torch.arange(bins, dtype=torch.float32)[:, None]
        window = torch.hann_window(n_fft, periodic=True)
        basis = (
            torch.cat([torch.cos(2 * math.pi * f * t / n_fft), -torch.sin(2 * math.pi * f * t / n_fft)])
            * window
        )
        self.register_buffer("forward_basis_buffer", basis[:, None, :])
        self.encoder = nn.Sequential(
            nn.Conv1d(bins, 32, 3, padding=1), nn.ReLU(), nn.Conv1d(32, 32, 3, stride=2, padding=1), nn.ReLU()
        )
        self.cell = nn.LSTMCell(32, 32)
        self.out = nn.Sequential(nn.ReLU(), nn.Conv1d(32, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.pad(x.unsqueeze(1), (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        spec = F.conv1d(x, self.forward_basis_buffer, stride=self.hop)
        cutoff = self.n_fft // 2 + 1
        mag = torch.sqrt(spec[:, :cutoff] ** 2 + spec[:, cutoff:] ** 2)
        feats = self.encoder(mag).mean(-1)
        h, c = self.cell(feats, (state[0], state[1]))
        prob = self.out(h.unsqueeze(-1)).squeeze(-1)
        return prob, torch.stack([h, c])


def make_silero_vad() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    g = _gen()
    return randomize(SileroVAD()), (torch.randn(1, 512, generator=g) * 0.3, torch.zeros(2, 1, 32))


class BGALayer(nn.Module):
    """BiSeNetV2's bilateral guided aggregation: detail and semantic branches cross-gated by sigmoids, the
    semantic one upsampled x4 bilinear (align_corners=False), the gated detail pooled by a strided avg pool."""

    def __init__(self, c: int = 32) -> None:
        super().__init__()
        self.left1 = nn.Sequential(
            nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False), nn.BatchNorm2d(c), nn.Conv2d(c, c, 1, bias=False)
        )
        self.left2 = nn.Sequential(
            nn.Conv2d(c, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.AvgPool2d(3, 2, 1, ceil_mode=False)
        )
        self.right1 = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        self.right2 = nn.Sequential(
            nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False), nn.BatchNorm2d(c), nn.Conv2d(c, c, 1, bias=False)
        )
        self.up1 = nn.Upsample(scale_factor=4)
        self.up2 = nn.Upsample(scale_factor=4)
        self.conv = nn.Sequential(
            nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)
        )

    def forward(self, x_d: torch.Tensor, x_s: torch.Tensor) -> torch.Tensor:
        left1, left2 = self.left1(x_d), self.left2(x_d)
        right1, right2 = self.right1(x_s), self.right2(x_s)
        right1 = self.up1(right1)
        left = left1 * torch.sigmoid(right1)
        right = left2 * torch.sigmoid(right2)
        right = self.up2(right)
        return self.conv(left + right)


class BiSeNetV2(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.detail = nn.Sequential(_cbr(3, 32, stride=2), _cbr(32, 32, stride=2))
        self.semantic = nn.Sequential(
            _cbr(3, 16, stride=4, k=3), _cbr(16, 32, stride=2), _cbr(32, 32, stride=2)
        )
        self.bga = BGALayer()
        self.head = nn.Conv2d(32, 5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.bga(self.detail(x), self.semantic(x)))
        return F.interpolate(logits, size=x.shape[2:], mode="bilinear", align_corners=False)


def make_bisenetv2() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(BiSeNetV2()), _px(64)


class MeanPooledEmbedder(nn.Module):
    """A sentence-transformers model as users export it: a Hugging Face BERT, mean pooling over the attention
    mask (``clamp(min=1e-9)``), then ``F.normalize``."""

    def __init__(self) -> None:
        super().__init__()
        from tests.corpus.outside import _t

        t = _t()
        self.bert = t.BertModel(t.BertConfig(max_position_embeddings=64, **TX), add_pooling_layer=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        token_embeddings = self.bert(input_ids=input_ids, attention_mask=attention_mask)[0]
        mask = attention_mask.unsqueeze(-1).expand(token_embeddings.size()).float()
        pooled = torch.sum(token_embeddings * mask, 1) / torch.clamp(mask.sum(1), min=1e-9)
        return F.normalize(pooled, p=2, dim=1)


def make_mean_pooled() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(MeanPooledEmbedder()), text_inputs()


# ---- Hugging Face


def make_modernbert() -> tuple[nn.Module, Any]:
    return _hf(
        "ModernBertForSequenceClassification",
        "ModernBertConfig",
        global_attn_every_n_layers=2,
        local_attention=8,
        max_position_embeddings=64,
        num_labels=3,
        pad_token_id=0,
        **dict(TX, num_hidden_layers=3),
    ), text_inputs()


def make_swin2sr() -> tuple[nn.Module, Any]:
    return _hf(
        "Swin2SRForImageSuperResolution",
        "Swin2SRConfig",
        image_size=16,
        embed_dim=16,
        depths=[1, 1],
        num_heads=[2, 2],
        window_size=4,
        upscale=2,
        upsampler="pixelshuffle",
    ), torch.rand(1, 3, 16, 16, generator=_gen())


def make_vitpose() -> tuple[nn.Module, Any]:
    t = _t()
    bb = t.VitPoseBackboneConfig(
        image_size=[64, 48],
        patch_size=[8, 8],
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        mlp_ratio=2,
        out_indices=[2],
    )
    return _hf("VitPoseForPoseEstimation", "VitPoseConfig", backbone_config=bb, num_labels=5), torch.randn(
        1, 3, 64, 48, generator=_gen()
    )


def make_owlv2() -> tuple[nn.Module, Any]:
    t = _t()
    cfg = t.Owlv2Config(
        text_config=dict(
            vocab_size=128,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=16,
        ),
        vision_config=dict(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
        ),
        projection_dim=32,
    )
    torch.manual_seed(0)
    model = randomize(t.Owlv2ForObjectDetection(cfg))
    g = _gen()
    ids = torch.randint(3, 128, (2, 16), generator=g)
    return model, {
        "input_ids": ids,
        "pixel_values": torch.randn(1, 3, 32, 32, generator=g),
        "attention_mask": torch.ones(2, 16, dtype=torch.int64),
    }


def make_siglip2() -> tuple[nn.Module, Any]:
    """Siglip2's NaFlex vision tower: patches flattened by the processor, a patch mask, and the grid each image
    has (``spatial_shapes``) to resize the learned position embedding to."""
    model = _hf("Siglip2VisionModel", "Siglip2VisionConfig", num_patches=16, patch_size=8, **V)
    g = _gen()
    return model, {
        "pixel_values": torch.randn(1, 16, 3 * 8 * 8, generator=g),
        "pixel_attention_mask": torch.ones(1, 16, dtype=torch.int32),
        "spatial_shapes": torch.tensor([[4, 4]], dtype=torch.int64),
    }


def make_moonshine_encoder() -> tuple[nn.Module, Any]:
    model = _hf(
        "MoonshineModel",
        "MoonshineConfig",
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        encoder_num_hidden_layers=2,
        decoder_num_hidden_layers=2,
        encoder_num_attention_heads=4,
        decoder_num_attention_heads=4,
    )
    return model.get_encoder(), torch.randn(1, 1600, generator=_gen()) * 0.3


def make_marian_encoder() -> tuple[nn.Module, Any]:
    model = _hf(
        "MarianMTModel",
        "MarianConfig",
        vocab_size=128,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=64,
        pad_token_id=0,
        decoder_start_token_id=0,
    )
    return model.get_encoder(), text_inputs()


def make_table_transformer() -> tuple[nn.Module, Any]:
    return _detr(
        "TableTransformerForObjectDetection",
        "TableTransformerConfig",
        use_pretrained_backbone=False,
        num_queries=10,
        num_labels=4,
    )


def make_textnet() -> tuple[nn.Module, Any]:
    return _hf(
        "TextNetModel",
        "TextNetConfig",
        stem_out_channels=16,
        conv_layer_kernel_sizes=[[[3, 3], [1, 3]], [[3, 3], [3, 1]]],
        conv_layer_strides=[[1, 2], [2, 1]],
        hidden_sizes=[16, 24, 32],
        out_features=["stage1", "stage2"],
    ), _px()


def make_pp_lcnet() -> tuple[nn.Module, Any]:
    return _hf("PPLCNetForImageClassification", "PPLCNetConfig", scale=0.25, num_labels=5), _px()


def make_clap_audio() -> tuple[nn.Module, Any]:
    model = _hf(
        "ClapAudioModelWithProjection",
        "ClapAudioConfig",
        spec_size=32,
        patch_size=4,
        patch_stride=(4, 4),
        num_mel_bins=16,
        window_size=4,
        hidden_size=32,
        depths=[1, 1],
        num_attention_heads=[2, 4],
        patch_embeds_hidden_size=16,
        projection_dim=16,
        enable_fusion=False,
    )
    return model, torch.randn(1, 1, 64, 16, generator=_gen())


def make_vits() -> tuple[nn.Module, Any]:
    """HF VITS text-to-speech (MMS-TTS): predicted durations set the waveform's length, noise drawn in forward."""
    return _hf(
        "VitsModel",
        "VitsConfig",
        vocab_size=40,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        ffn_dim=64,
        flow_size=16,
        spectrogram_bins=33,
        upsample_initial_channel=32,
        upsample_rates=[4, 4],
        upsample_kernel_sizes=[8, 8],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
        prior_encoder_num_flows=2,
        prior_encoder_num_wavenet_layers=2,
        posterior_encoder_num_wavenet_layers=2,
        duration_predictor_num_flows=2,
        duration_predictor_filter_channels=16,
        depth_separable_num_layers=2,
    ), {"input_ids": torch.randint(1, 40, (1, 10), generator=_gen())}


PLAIN8: list[Outside] = [
    Outside("SqueezeNet 1.1 (Fire, ceil-mode pools)", "vision", make_squeezenet),
    Outside("MnasNet (torchvision)", "vision", make_mnasnet),
    Outside("torchvision ViT (nn.MultiheadAttention fast path)", "vision", make_tv_vit),
    Outside("nn.TransformerEncoder with padding mask (nested-tensor fast path)", "text", make_padded_encoder),
    Outside("EfficientViT linear attention (ReLU, pad-1 normalizer)", "vision", make_efficientvit),
    Outside("MobileNetV4 (UIB, mobile MQA)", "vision", make_mobilenetv4),
    Outside("RepViT (train-time branches, SE)", "vision", make_repvit),
    Outside("FastViT (RepMixer, RepCPE)", "vision", make_fastvit),
    Outside("EdgeNeXt SDTA (cross-covariance attention)", "vision", make_edgenext),
    Outside("FasterNet partial conv (slice assignment)", "vision", make_fasternet),
    Outside("GhostNetV2 DFC attention", "vision", make_ghostnetv2),
    Outside("LeViT (attention bias table, hardswish)", "vision", make_levit),
    Outside("BlazeFace (channel pad, anchor decode)", "detection", make_blazeface),
    Outside("RTMPose SimCC head (GAU, argmax decode)", "vision", make_rtmpose),
    Outside("U^2-Net RSU block (side outputs)", "segmentation", make_u2net),
    Outside("DBNet head (differentiable binarization)", "detection", make_dbnet),
    Outside("Zero-DCE (curve iterations)", "vision", make_zero_dce),
    Outside("Real-ESRGAN RRDB", "vision", make_rrdbnet),
    Outside("BC-ResNet (sub-spectral norm)", "audio", make_bcresnet),
    Outside("Silero-style VAD (conv STFT, LSTMCell state)", "audio", make_silero_vad),
    Outside("BiSeNetV2 guided aggregation", "segmentation", make_bisenetv2),
    Outside("sentence embeddings (BERT, masked mean pooling)", "text", make_mean_pooled),
    Outside("ModernBERT (HF, local/global attention)", "text", make_modernbert),
    Outside("Swin2SR (HF, super-resolution)", "vision", make_swin2sr),
    Outside("ViTPose (HF)", "vision", make_vitpose),
    Outside("OWLv2 (HF, open-vocabulary detection)", "detection", make_owlv2),
    Outside("Siglip2 NaFlex vision (HF, spatial_shapes)", "vision", make_siglip2),
    Outside("Moonshine encoder (HF)", "audio", make_moonshine_encoder),
    Outside("Marian encoder (HF)", "text", make_marian_encoder),
    Outside("Table Transformer (HF)", "detection", make_table_transformer),
    Outside("TextNet (HF)", "vision", make_textnet),
    Outside("PP-LCNet (HF)", "vision", make_pp_lcnet),
    Outside("CLAP audio tower (HF)", "audio", make_clap_audio),
    Outside(
        "VITS text-to-speech (HF)",
        "audio",
        make_vits,
        convert="fail",
        numerics="skipped",
        note="the spline flow's writes through a data-dependent bool mask: named at modeling_vits.py's lines",
    ),
]

OUTSIDE8: list[Outside] = PLAIN8 + QUIRKS8
