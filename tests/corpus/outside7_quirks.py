"""Outside models, round 7: odd-but-common code, each small model leaning on a few constructs users write.

``torch.einsum`` with an ellipsis, ``F.scaled_dot_product_attention`` with a float mask and ``dropout_p`` set
by ``self.training``, ``nn.Identity`` chains, ``torch.tensor(...)`` built in forward from Python floats,
``x.size(-1) ** -0.5``, ``torch.arange`` with float steps, boolean indexing by a static mask buffer,
``torch.cat`` with an empty tensor, ``masked_select`` by a constant mask, a list comprehension over an
``nn.ModuleDict``, ``F.normalize`` with an eps, ``clamp_min`` / ``clamp_max`` on integers, a float16 buffer in
an fp32 model, int32 index inputs, ``torch.flip`` / ``rot90``, ``triu`` / ``tril`` with a diagonal,
``pixel_unshuffle``, a Siamese ``cdist``, a flow warp by ``meshgrid`` + ``grid_sample``, a CTC greedy decode
by ``unique_consecutive`` and a FastSpeech length regulator by ``repeat_interleave`` of predicted durations.
Listed in :data:`tests.corpus.outside7.OUTSIDE7`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tests.corpus.families import randomize
from tests.corpus.outside import Outside, _px


def _gen(seed: int = 7) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class EllipsisEinsum(nn.Module):
    """Multi-head attention written with ``einsum("...qd,...kd->...qk")`` on a 4-D tensor and a bilinear
    ``einsum("...i,ij,...j->...")`` score."""

    def __init__(self, d: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.bilinear = nn.Parameter(torch.randn(d, d) / 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attn = torch.einsum("...qd,...kd->...qk", q, k) * q.size(-1) ** -0.5
        y = torch.einsum("...qk,...kd->...qd", attn.softmax(-1), v).transpose(1, 2).reshape(b, n, d)
        y = self.out(y)
        return y, torch.einsum("...i,ij,...j->...", y, self.bilinear, x)


def make_ellipsis_einsum() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(EllipsisEinsum()), torch.randn(2, 6, 16, generator=_gen())


class SDPAFloatMask(nn.Module):
    """SDPA with an additive float mask (a learned relative bias plus -1e4 on padded keys, the HF style) and
    ``dropout_p=self.dropout if self.training else 0.0``; an ``nn.Identity`` chain where a norm was removed."""

    def __init__(self, d: int = 16, heads: int = 2, n: int = 8) -> None:
        super().__init__()
        self.heads, self.dropout = heads, 0.1
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.rel_bias = nn.Parameter(torch.randn(heads, n, n) * 0.5)
        self.pre = nn.Sequential(nn.Identity(), nn.Identity())
        self.post = nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.pre(x)).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        bias = self.rel_bias[None] + (1.0 - mask[:, None, None, :].float()) * -1e4
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0
        )
        return self.post(self.out(y.transpose(1, 2).reshape(b, n, d)))


def make_sdpa_float_mask() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    mask = torch.ones(2, 8, dtype=torch.int64)
    mask[1, 6:] = 0
    return randomize(SDPAFloatMask()), (torch.randn(2, 8, 16, generator=_gen()), mask)


class PythonConstants(nn.Module):
    """Constants made in forward: ``torch.tensor([0.485, 0.456, 0.406])`` normalization, ``torch.arange(0.0,
    1.0, 0.125)`` positions (float steps), ``torch.tensor(2.0).sqrt()``, ``math``-free ``x.size(-1) ** -0.5``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        h = self.conv((x - mean) / std)
        pos = torch.arange(0.0, 1.0, 0.125)
        h = h + pos.view(1, 1, 1, -1)
        h = h.mean((2, 3)) * h.size(-1) ** -0.5 * torch.tensor(2.0).sqrt()
        return self.fc(h)


def make_python_constants() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(PythonConstants()), torch.rand(1, 3, 8, 8, generator=_gen())


class StaticMasks(nn.Module):
    """A static bool mask buffer used to index (``x[:, self.keep]``), ``masked_select`` by a constant mask,
    ``torch.cat`` with an empty tensor (an empty 'extra features' slot), ``triu`` / ``tril`` with diagonals."""

    def __init__(self, d: int = 12) -> None:
        super().__init__()
        keep = torch.zeros(d, dtype=torch.bool)
        keep[::3] = True
        keep[1] = True
        self.register_buffer("keep", keep)
        self.fc = nn.Linear(int(keep.sum()), 6)
        self.register_buffer("extra", torch.zeros(0))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.fc(x[:, self.keep])
        sel = torch.masked_select(x[0], self.keep)
        h = torch.cat([h, self.extra.view(x.shape[0], 0)], dim=1)
        m = h[:, :, None] * h[:, None, :]
        return torch.triu(m, diagonal=1) - torch.tril(m, diagonal=-2), sel, h


def make_static_masks() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(StaticMasks()), torch.randn(3, 12, generator=_gen())


class ModuleDictHeads(nn.Module):
    """Task heads in an ``nn.ModuleDict`` run by a list comprehension, ``F.normalize(eps=1e-6)``, tanh GELU."""

    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.trunk = nn.Linear(d, d)
        self.heads = nn.ModuleDict(
            {"age": nn.Linear(d, 1), "gender": nn.Linear(d, 2), "mood": nn.Linear(d, 5)}
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.normalize(F.gelu(self.trunk(x), approximate="tanh"), dim=-1, eps=1e-6)
        return torch.cat([head(h) for name, head in self.heads.items()], dim=-1)


def make_moduledict_heads() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(ModuleDictHeads()), torch.randn(4, 16, generator=_gen())


class IntIndexInputs(nn.Module):
    """int32 index inputs (what an app hands over), clamped by ``clamp_min`` / ``clamp_max`` on the integers,
    used for an embedding and a ``gather``; a float16 buffer (a stored table) in an fp32 model."""

    def __init__(self, vocab: int = 20, d: int = 8) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.register_buffer("table", (torch.randn(vocab, generator=_gen()) * 0.5).half())
        self.fc = nn.Linear(d + 1, 3)
        self.vocab = vocab

    def forward(self, ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        ids = ids.clamp_min(0).clamp_max(self.vocab - 1)
        pos = torch.clamp_max(pos, ids.shape[1] - 1)
        picked = torch.gather(ids, 1, pos.long())
        feat = torch.cat([self.emb(picked), self.table[picked].float()[..., None]], -1)
        return self.fc(feat)


def make_int32_inputs() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    g = _gen()
    return randomize(IntIndexInputs()), (
        torch.randint(-3, 25, (2, 10), generator=g, dtype=torch.int32),
        torch.randint(0, 12, (2, 4), generator=g, dtype=torch.int32),
    )


class FlipRotate(nn.Module):
    """Test-time augmentation inside forward: ``torch.flip`` and ``torch.rot90`` of the input, the outputs
    rotated back and averaged; ``pixel_unshuffle`` (space-to-depth) at the stem."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(12, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 8, 3, padding=1))
        self.up = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def net(t: torch.Tensor) -> torch.Tensor:
            return self.up(self.body(F.pixel_unshuffle(t, 2)))

        outs = [
            net(x),
            net(torch.flip(x, [3])).flip(3),
            torch.rot90(net(torch.rot90(x, 1, (2, 3))), -1, (2, 3)),
        ]
        return torch.stack(outs).mean(0)


def make_flip_rot90() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(FlipRotate()), _px(16)


class Siamese(nn.Module):
    """A Siamese / triplet embedding net: shared CNN, ``F.normalize``, anchor-vs-gallery ``torch.cdist`` and the
    nearest gallery index by ``argmin``."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Linear(16, 8),
        )  # fmt: skip

    def forward(self, anchor: torch.Tensor, gallery: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = F.normalize(self.net(anchor), dim=1)
        g = F.normalize(self.net(gallery), dim=1)
        d = torch.cdist(a, g)
        return d, d.argmin(1)


def make_siamese() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    g = _gen()
    return randomize(Siamese()), (
        torch.randn(2, 3, 16, 16, generator=g),
        torch.randn(5, 3, 16, 16, generator=g),
    )


class FlowWarp(nn.Module):
    """Backward warping by a predicted flow: a base grid by ``torch.meshgrid`` (``indexing="xy"``), normalized
    to [-1, 1] by the width / height, ``grid_sample(padding_mode="border", align_corners=True)``."""

    def __init__(self) -> None:
        super().__init__()
        self.flow = nn.Sequential(nn.Conv2d(6, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 2, 3, padding=1))

    def forward(self, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        flow = self.flow(torch.cat([img1, img2], 1)) * 2.0
        _, _, h, w = img1.shape
        xx, yy = torch.meshgrid(torch.arange(w), torch.arange(h), indexing="xy")
        grid = torch.stack((xx, yy), 0).float()[None] + flow
        gx = 2.0 * grid[:, 0] / max(w - 1, 1) - 1.0
        gy = 2.0 * grid[:, 1] / max(h - 1, 1) - 1.0
        return F.grid_sample(img2, torch.stack((gx, gy), 3), padding_mode="border", align_corners=True)


def make_flow_warp() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    g = _gen()
    return randomize(FlowWarp()), (
        torch.randn(1, 3, 12, 16, generator=g),
        torch.randn(1, 3, 12, 16, generator=g),
    )


class CTCGreedy(nn.Module):
    """A Conformer-CTC-ish encoder with the greedy decode inside forward: ``argmax`` per frame, repeats merged by
    ``torch.unique_consecutive``, blanks dropped by boolean indexing (variable-length ids out)."""

    def __init__(self, feats: int = 8, d: int = 16, vocab: int = 6) -> None:
        super().__init__()
        self.enc = nn.Sequential(
            nn.Conv1d(feats, d, 3, padding=1), nn.SiLU(), nn.Conv1d(d, d, 3, padding=1, groups=d)
        )
        self.out = nn.Linear(d, vocab)

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logp = self.out(self.enc(feats).transpose(1, 2)).log_softmax(-1)
        best = logp[0].argmax(-1)
        merged = torch.unique_consecutive(best)
        return logp, merged[merged != 0]


def make_ctc_greedy() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(CTCGreedy()), torch.randn(1, 8, 20, generator=_gen())


class LengthRegulator(nn.Module):
    """FastSpeech's length regulator: a duration predictor's log-durations to integer frame counts
    (``round(exp(d) - 1).clamp(min=0).long()``), phoneme states expanded by ``repeat_interleave`` (the mel
    length depends on the input)."""

    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.emb = nn.Embedding(30, d)
        self.duration = nn.Sequential(nn.Conv1d(d, d, 3, padding=1), nn.ReLU(), nn.Conv1d(d, 1, 1))
        self.decoder = nn.Linear(d, 8)

    def forward(self, phonemes: torch.Tensor) -> torch.Tensor:
        h = self.emb(phonemes)
        log_d = self.duration(h.transpose(1, 2)).squeeze(1)
        frames = torch.clamp(torch.round(torch.exp(log_d) - 1), min=0).long()
        expanded = torch.repeat_interleave(h[0], frames[0], dim=0)
        return self.decoder(expanded)


def make_length_regulator() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    m = randomize(LengthRegulator())
    with torch.no_grad():
        m.duration[2].bias.fill_(1.0)
    return m, torch.randint(0, 30, (1, 7), generator=_gen())


QUIRKS7: list[Outside] = [
    Outside("einsum with ellipsis", "plain", make_ellipsis_einsum),
    Outside("SDPA float mask, dropout_p by self.training, Identity chain", "plain", make_sdpa_float_mask),
    Outside("torch.tensor / float arange built in forward", "vision", make_python_constants),
    Outside(
        "static bool-mask indexing, masked_select, empty cat, triu/tril",
        "plain",
        make_static_masks,
        note="masked_select by a constant mask: rescued (was refused as data-dependent)",
    ),
    Outside("ModuleDict heads by comprehension, normalize eps, tanh GELU", "plain", make_moduledict_heads),
    Outside("int32 index inputs, int clamp_min/max, fp16 buffer", "plain", make_int32_inputs),
    Outside("flip / rot90 TTA, pixel_unshuffle", "vision", make_flip_rot90),
    Outside("Siamese embeddings (normalize, cdist, argmin)", "vision", make_siamese),
    Outside("flow warp (meshgrid xy, grid_sample border)", "vision", make_flow_warp),
    Outside(
        "CTC greedy decode (unique_consecutive)",
        "audio",
        make_ctc_greedy,
        convert="fail",
        numerics="skipped",
        note="data-dependent output length: unique_consecutive named at its line with the fixed-shape rewrite",
    ),
    Outside(
        "FastSpeech length regulator (repeat_interleave)",
        "audio",
        make_length_regulator,
        convert="fail",
        numerics="skipped",
        note="repeats predicted in the model: data-dependent length, repeat_interleave named at its line",
    ),
]
