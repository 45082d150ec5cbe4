"""Outside models, round 8: layers users ship off the usual path, each small model leaning on a few of them.

ENet's ``MaxPool2d(return_indices=True)`` / ``MaxUnpool2d``, ResNet-D's ``AvgPool2d(ceil_mode=True,
count_include_pad=False)`` shortcut on odd sizes, ``Conv1d(padding="same")`` with an even kernel and a dilation,
PSPNet's pyramid pooling (``AdaptiveAvgPool2d`` to bins that do not divide the map), a ViT fed a larger image
than it was built for (``interpolate_pos_encoding``: bicubic resizing of the position table), a Johnson
fast-style-transfer net (``InstanceNorm2d(affine=True)``, reflection padding), ``nn.MultiheadAttention`` with
``add_bias_kv`` / ``add_zero_attn`` / ``kdim`` / ``vdim``, ``F.scaled_dot_product_attention(enable_gqa=True)``
with an explicit ``scale``, an activation zoo, and elementwise odd ones (``round(decimals=)``, ``fmod``,
``remainder``, ``copysign``, ``lerp``, ``hypot``, ``atan2``, ``addcmul``, ``baddbmm``). Listed in
:data:`tests.corpus.outside8.OUTSIDE8`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tests.corpus.families import randomize
from tests.corpus.outside import Outside, V, _hf, _px


def _gen(seed: int = 8) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class ENetDown(nn.Module):
    """ENet's downsampling bottleneck: the main branch max-pools with ``return_indices=True`` and zero-pads the
    channels; the matching upsampling bottleneck puts values back with ``MaxUnpool2d`` at those indices."""

    def __init__(self, cin: int = 16, cout: int = 32) -> None:
        super().__init__()
        self.main_max1 = nn.MaxPool2d(2, stride=2, return_indices=True)
        self.ext = nn.Sequential(
            nn.Conv2d(cin, cin // 2, 2, 2, bias=False),
            nn.BatchNorm2d(cin // 2),
            nn.PReLU(),
            nn.Conv2d(cin // 2, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.cout, self.cin = cout, cin
        self.up_conv = nn.Sequential(nn.Conv2d(cout, cin, 1, bias=False), nn.BatchNorm2d(cin))
        self.unpool = nn.MaxUnpool2d(kernel_size=2)
        self.out_activation = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main, max_indices = self.main_max1(x)
        n, _, h, w = main.size()
        padding = torch.zeros(n, self.cout - self.cin, h, w)
        main = torch.cat((main, padding), 1)
        down = self.out_activation(main + self.ext(x))
        up = self.unpool(self.up_conv(down), max_indices, output_size=x.size())
        return self.out_activation(up + x)


def make_enet() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), ENetDown())
    return randomize(m), _px()


class ResNetDShortcut(nn.Module):
    """ResNet-D / timm's ``avg_down`` shortcut: ``AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)`` on
    an odd-sized map then a 1x1 conv; the main path a 3x3 stride-2 conv; and a ``Conv1d(padding="same")`` with
    an even kernel and dilation 2 over the flattened rows (PyTorch pads the extra element on the right)."""

    def __init__(self, c: int = 16) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)
        self.short = nn.Sequential(nn.Conv2d(c, 2 * c, 1, bias=False), nn.BatchNorm2d(2 * c))
        self.main = nn.Sequential(nn.Conv2d(c, 2 * c, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * c))
        self.temporal = nn.Conv1d(2 * c, 2 * c, 4, padding="same", dilation=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.main(x) + self.short(self.pool(x)))
        b, c, h, w = y.shape
        return self.temporal(y.flatten(2)).view(b, c, h, w)


def make_resnet_d() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1), ResNetDShortcut())
    return randomize(m), _px(15)


class PyramidPooling(nn.Module):
    """PSPNet's pyramid pooling module: adaptive average pools to 1, 2, 3 and 6 bins of a 20 x 20 map (3 and 6
    do not divide it: overlapping windows), 1x1 convs, bilinear upsampling with ``align_corners=True``."""

    def __init__(self, c: int = 16, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            [
                nn.Sequential(
                    nn.AdaptiveAvgPool2d(b),
                    nn.Conv2d(c, c // 4, 1, bias=False),
                    nn.BatchNorm2d(c // 4),
                    nn.ReLU(),
                )
                for b in bins
            ]
        )
        self.bottleneck = nn.Conv2d(c * 2, 5, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        priors = [
            F.interpolate(stage(x), size=(h, w), mode="bilinear", align_corners=True) for stage in self.stages
        ]
        return self.bottleneck(torch.cat([*priors, x], 1))


def make_pspnet() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), PyramidPooling())
    return randomize(m), _px(40)


class InterpolatedViT(nn.Module):
    """A Hugging Face ViT built for 32 x 32 images run on 48 x 48 ones: ``interpolate_pos_encoding=True``
    resizes the position table by bicubic interpolation (a non-integer scale) inside the model."""

    def __init__(self) -> None:
        super().__init__()
        self.vit = _hf("ViTModel", "ViTConfig", image_size=32, patch_size=8, add_pooling_layer=False, **V)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.vit(pixel_values, interpolate_pos_encoding=True).last_hidden_state


def make_vit_interpolated() -> tuple[nn.Module, Any]:
    return InterpolatedViT().eval(), _px(48)


class TransformerNet(nn.Module):
    """Johnson et al.'s fast style transfer net (pytorch/examples): reflection-padded convs,
    ``InstanceNorm2d(affine=True)``, residual blocks, nearest-upsampled convs, a 0-255 image in and out."""

    def __init__(self, c: int = 16) -> None:
        super().__init__()

        def conv(cin: int, cout: int, k: int, stride: int = 1, up: int | None = None) -> nn.Module:
            layers: list[nn.Module] = []
            if up:
                layers.append(nn.Upsample(mode="nearest", scale_factor=up))
            layers += [nn.ReflectionPad2d(k // 2), nn.Conv2d(cin, cout, k, stride)]
            return nn.Sequential(*layers)

        self.net = nn.Sequential(
            conv(3, c, 9),
            nn.InstanceNorm2d(c, affine=True),
            nn.ReLU(),
            conv(c, 2 * c, 3, 2),
            nn.InstanceNorm2d(2 * c, affine=True),
            nn.ReLU(),
        )
        self.res = nn.ModuleList(
            [
                nn.Sequential(
                    conv(2 * c, 2 * c, 3),
                    nn.InstanceNorm2d(2 * c, affine=True),
                    nn.ReLU(),
                    conv(2 * c, 2 * c, 3),
                    nn.InstanceNorm2d(2 * c, affine=True),
                )
                for _ in range(2)
            ]
        )
        self.up = nn.Sequential(
            conv(2 * c, c, 3, up=2), nn.InstanceNorm2d(c, affine=True), nn.ReLU(), conv(c, 3, 9)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        for block in self.res:
            y = y + block(y)
        return self.up(y)


def make_style_transfer() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(TransformerNet()), torch.rand(1, 3, 32, 32, generator=_gen()) * 255


class OddMHA(nn.Module):
    """``nn.MultiheadAttention`` with the rarely used flags: separate key / value widths (``kdim``, ``vdim``),
    ``add_bias_kv`` (a learned key and value appended) and ``add_zero_attn`` (a zero key / value appended), a
    key padding mask and averaged attention weights returned."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(
            32, 4, kdim=24, vdim=16, add_bias_kv=True, add_zero_attn=True, batch_first=True
        )

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pad: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out, weights = self.attn(q, k, v, key_padding_mask=pad)
        return out, weights


def make_odd_mha() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    g = _gen()
    pad = torch.zeros(1, 10, dtype=torch.bool)
    pad[0, 7:] = True
    return randomize(OddMHA()), (
        torch.randn(1, 6, 32, generator=g),
        torch.randn(1, 10, 24, generator=g),
        torch.randn(1, 10, 16, generator=g),
        pad,
    )


class GQASDPA(nn.Module):
    """Grouped-query attention by ``F.scaled_dot_product_attention(..., scale=..., enable_gqa=True)`` (PyTorch
    2.5+): 8 query heads on 2 key / value heads without ``repeat_interleave``, a causal float mask."""

    def __init__(self, d: int = 32, heads: int = 8, kv_heads: int = 2) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.hd = heads, kv_heads, d // heads
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * kv_heads * self.hd)
        self.o = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q(x).view(b, t, self.heads, self.hd).transpose(1, 2)
        k, v = self.kv(x).view(b, t, 2, self.kv_heads, self.hd).permute(2, 0, 3, 1, 4)
        mask = torch.full((t, t), float("-inf")).triu(1)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.5, enable_gqa=True)
        return self.o(y.transpose(1, 2).reshape(b, t, -1))


def make_gqa_sdpa() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(GQASDPA()), torch.randn(1, 12, 32, generator=_gen())


class ActivationZoo(nn.Module):
    """Every activation ``torch.nn`` has that a small model may pick, one after the other on slices of a
    linear layer's output."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16 * 16)
        self.acts = nn.ModuleList(
            [
                nn.Mish(),
                nn.SELU(),
                nn.CELU(alpha=0.5),
                nn.Softsign(),
                nn.LogSigmoid(),
                nn.Softplus(beta=2.0, threshold=5.0),
                nn.Hardtanh(-0.5, 0.5),
                nn.ReLU6(),
                nn.Threshold(0.1, -1.0),
                nn.Tanhshrink(),
                nn.Softshrink(0.3),
                nn.Hardshrink(0.3),
                nn.RReLU(),
                nn.ELU(alpha=0.7),
                nn.Softmin(dim=-1),
                nn.LogSoftmax(dim=-1),
            ]
        )
        self.glu = nn.GLU(dim=-1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        parts = self.fc(x).chunk(16, dim=-1)
        out = torch.cat([act(p) for act, p in zip(self.acts, parts, strict=True)], -1)
        return out, self.glu(out)


def make_activation_zoo() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(ActivationZoo()), torch.randn(4, 16, generator=_gen()) * 2


class ElementwiseOdd(nn.Module):
    """Elementwise ops off the usual path: ``round(decimals=2)``, ``fmod`` / ``remainder`` of negatives,
    ``copysign``, ``lerp`` with a tensor weight, ``hypot``, ``atan2``, ``addcmul``, ``baddbmm`` with alpha / beta,
    ``frac``, ``trunc``, ``logaddexp``, ``xlogy``."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.b = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.a(x) * 3, self.b(x) * 3
        outs = [
            torch.round(a, decimals=2),
            torch.fmod(a, 1.5),
            torch.remainder(a, 1.5),
            torch.copysign(b, a),
            torch.lerp(a, b, torch.sigmoid(b)),
            torch.hypot(a, b),
            torch.atan2(a, b),
            torch.addcmul(a, a, b, value=0.5),
            torch.baddbmm(a.unsqueeze(-1), a.unsqueeze(-1), b.unsqueeze(1), beta=0.5, alpha=0.25).sum(-1),
            torch.frac(a),
            torch.trunc(a),
            torch.logaddexp(a, b),
            torch.xlogy(torch.sigmoid(a), torch.sigmoid(b)),
        ]
        return torch.stack(outs, 1)


def make_elementwise_odd() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(ElementwiseOdd()), torch.randn(2, 8, generator=_gen())


class IdsOnlyLM(nn.Module):
    """A grouped-query Hugging Face decoder (Qwen2: 4 query heads on 2 key / value heads) called with token ids
    alone, as a next-token scorer usually is. Run eagerly with no padding mask, transformers' SDPA attention
    passes ``is_causal=True, enable_gqa=True``; traced, it builds the mask and repeats the key / value heads
    (on a Mac with MPS and PyTorch 2.13 it passes ``enable_gqa=True`` with the mask: the SDPA rescue's case)."""

    def __init__(self) -> None:
        super().__init__()
        self.lm = _hf(
            "Qwen2ForCausalLM",
            "Qwen2Config",
            vocab_size=128,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=64,
            attn_implementation="sdpa",
        )

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.lm(input_ids=input_ids, use_cache=False).logits


def make_ids_only_lm() -> tuple[nn.Module, Any]:
    return IdsOnlyLM().eval(), torch.randint(3, 128, (1, 12), generator=_gen(), dtype=torch.int32)


class CircularPadding(nn.Module):
    """Panorama / equirectangular convs: ``Conv2d(padding_mode="circular")``, ``nn.CircularPad2d`` before a
    valid conv, and a ``ConvTranspose2d`` with ``output_padding``, ``dilation`` and ``groups`` at once."""

    def __init__(self) -> None:
        super().__init__()
        self.wrap = nn.Conv2d(3, 8, 3, padding=1, padding_mode="circular")
        self.pad = nn.CircularPad2d((2, 2, 1, 1))
        self.conv = nn.Conv2d(8, 8, (3, 5))
        self.up = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1, dilation=2, groups=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(F.relu(self.conv(self.pad(F.relu(self.wrap(x))))))


def make_circular() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(CircularPadding()), torch.randn(1, 3, 12, 24, generator=_gen())


class ProjectedLSTM(nn.Module):
    """An ``nn.LSTM`` with ``proj_size`` (LSTMP, the speech recognizers' projected LSTM) and an
    ``nn.RNN(nonlinearity="relu")``, batch first."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(16, 32, num_layers=1, batch_first=True, proj_size=8)
        self.rnn = nn.RNN(8, 8, nonlinearity="relu", batch_first=True)
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(x)
        z, _ = self.rnn(y)
        return self.head(z)


def make_lstmp() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(ProjectedLSTM()), torch.randn(1, 10, 16, generator=_gen())


class PoolingOdd(nn.Module):
    """Layers torch.nn has that few models use: ``nn.ChannelShuffle``, ``nn.LPPool2d`` (power-average pooling),
    ``nn.AdaptiveMaxPool1d`` to a size that does not divide the length, ``nn.Unflatten``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.shuffle = nn.ChannelShuffle(2)
        self.lp = nn.LPPool2d(2, 2)
        self.amax = nn.AdaptiveMaxPool1d(5)
        self.unflatten = nn.Unflatten(1, (2, 4))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.lp(self.shuffle(F.relu(self.conv(x))))
        pooled = self.amax(y.flatten(2))
        return self.unflatten(pooled), y


def make_pooling_odd() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(PoolingOdd()), _px(14)


class SamplingOdd(nn.Module):
    """``grid_sample`` with ``mode="nearest"``, ``padding_mode="reflection"``, ``align_corners=True`` on a
    predicted grid, and ``nn.Upsample`` by a non-uniform, non-integer scale ``(2, 1.5)``."""

    def __init__(self) -> None:
        super().__init__()
        self.grid = nn.Conv2d(3, 2, 3, padding=1)
        self.up = nn.Upsample(scale_factor=(2, 1.5), mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grid = torch.tanh(self.grid(x)).permute(0, 2, 3, 1) * 1.3  # some points outside: reflected
        warped = F.grid_sample(x, grid, mode="nearest", padding_mode="reflection", align_corners=True)
        return warped, self.up(x)


def make_sampling_odd() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(SamplingOdd()), _px(16)


class NormsOdd(nn.Module):
    """Distances and norms off the usual path: ``cdist(p=1)``, ``linalg.vector_norm(ord=inf)``,
    ``linalg.matrix_norm`` (Frobenius), ``cummin``, ``index_fill``."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        a = self.proj(x)
        d1 = torch.cdist(a, y, p=1.0)
        inf = torch.linalg.vector_norm(a, ord=float("inf"), dim=-1)
        fro = torch.linalg.matrix_norm(a.view(-1, 2, 4))
        running_min = torch.cummin(a, dim=1).values
        filled = a.index_fill(1, torch.tensor([0, 3]), -1.0)
        return d1, inf, fro, running_min, filled


def make_norms_odd() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    g = _gen()
    return randomize(NormsOdd()), (torch.randn(6, 8, generator=g), torch.randn(5, 8, generator=g))


class IntentTagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(100, 16)
        self.mix = nn.Linear(16, 16)
        self.fc = nn.Linear(16, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.mix(self.emb(ids))))


def make_dynamic_quant() -> tuple[nn.Module, Any]:
    """What many try first to shrink a model for a phone: ``torch.ao.quantization.quantize_dynamic`` (int8
    ``nn.Linear`` with packed weights), handed to check as it is."""
    torch.manual_seed(0)
    model = torch.ao.quantization.quantize_dynamic(randomize(IntentTagger()), {nn.Linear}, dtype=torch.qint8)
    return model, torch.randint(0, 100, (1, 8), generator=_gen())


QUIRKS8: list[Outside] = [
    Outside("ENet (max-pool indices, MaxUnpool2d)", "segmentation", make_enet),
    Outside("ResNet-D shortcut (ceil-mode avg pool, even 'same' conv)", "vision", make_resnet_d),
    Outside("PSPNet pyramid pooling (non-dividing adaptive bins)", "segmentation", make_pspnet),
    Outside("ViT at a larger image (interpolate_pos_encoding, bicubic)", "vision", make_vit_interpolated),
    Outside("fast style transfer (InstanceNorm2d, reflection pad, 0-255)", "vision", make_style_transfer),
    Outside("nn.MultiheadAttention kdim/vdim, add_bias_kv, add_zero_attn", "plain", make_odd_mha),
    Outside(
        "SDPA enable_gqa with scale",
        "text",
        make_gqa_sdpa,
        note="enable_gqa: key / value heads repeated by devicefit's SDPA translation (was an unsupported-op FAIL)",
    ),
    Outside("Qwen2 GQA decoder on ids alone (HF)", "text", make_ids_only_lm),
    Outside("activation zoo", "plain", make_activation_zoo),
    Outside(
        "torch.ao dynamic int8 quantization (quantize_dynamic)",
        "text",
        make_dynamic_quant,
        convert="fail",
        numerics="skipped",
        note="the quantized modules named with what to do (was coremltools' bare AssertionError for an LSTM)",
    ),
    Outside("circular padding, dilated grouped transposed conv", "vision", make_circular),
    Outside("projected LSTM (proj_size), ReLU RNN", "audio", make_lstmp),
    Outside("ChannelShuffle, LPPool2d, AdaptiveMaxPool1d, Unflatten", "plain", make_pooling_odd),
    Outside(
        "grid_sample nearest/reflection, Upsample (2, 1.5)",
        "vision",
        make_sampling_odd,
        numerics="fail",
        note="nearest sampling on a grid from fp16 weights picks other pixels: weight storage loss, named at its line",
    ),
    Outside("cdist p=1, inf norm, matrix_norm, cummin, index_fill", "plain", make_norms_odd),
    Outside("elementwise odd ones (round decimals, fmod, copysign, ...)", "plain", make_elementwise_odd),
]
