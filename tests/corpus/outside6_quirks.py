"""Outside models, round 6: odd-but-common code, each small model leaning on one construct users write.

``torch.where`` with scalar branches, attention rows masked entirely with ``-inf`` (softmax gives NaN, zeroed
afterwards), ``F.interpolate`` by a non-integer ``scale_factor``, ``chunk`` / ``split`` into uneven parts,
in-place updates on slices and on an expanded-then-cloned buffer, an ``add_`` that reads what it writes (eager
only), writes through ``diagonal`` / ``transpose`` / ``chunk`` views, positions by integer division and
``remainder``, ``clamp`` with tensor bounds, ``cumprod`` / ``logsumexp`` / ``torch.diff``, overlapping
``F.unfold`` / ``F.fold``, shapes read from ``x.shape`` as Python ints, three inputs of three dtypes (int64
ids, float features, a bool mask) with a dict out, a channels-last example input through a LayerNorm2d done by
``permute``, grouped-query attention by ``repeat_interleave``, numeric binning by ``torch.bucketize`` and
reflect / replicate padding; and two fp16 overflows: a hand-written softmax without the max subtracted,
Gram matrices of a 0-255 image. Listed in :data:`tests.corpus.outside6.OUTSIDE6`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tests.corpus.families import randomize
from tests.corpus.outside import Outside, _px


def _gen(seed: int = 6) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class WhereScalars(nn.Module):
    """``torch.where(cond, x, 0.0)``, ``torch.where(cond, 1.0, -1.0)`` and a scalar-tensor mix."""

    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, d), nn.Linear(d, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        relu_ish = torch.where(h > 0, h, 0.0)
        sign = torch.where(h > 0.1, 1.0, -1.0)
        capped = torch.where(h.abs() > 1.5, torch.tensor(1.5), h)
        return self.fc2(relu_ish + 0.1 * sign + capped)


def make_where_scalars() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(WhereScalars()), torch.randn(3, 16, generator=_gen())


class FullyMaskedRows(nn.Module):
    """Attention over a padded pair: query and key padding from one bool mask input; padded queries see only
    ``-inf`` so softmax gives NaN rows, which the code zeroes afterwards with ``masked_fill``."""

    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, -1)
        pair = keep[:, :, None] & keep[:, None, :]
        att = (q @ k.transpose(1, 2) / math.sqrt(x.shape[-1])).masked_fill(~pair, float("-inf")).softmax(-1)
        att = att.masked_fill(~keep[:, :, None], 0.0)
        return self.out(att @ v)


def make_fully_masked() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    keep = torch.ones(1, 8, dtype=torch.bool)
    keep[:, 6:] = False
    return randomize(FullyMaskedRows()), (torch.randn(1, 8, 16, generator=_gen()), keep)


class FractionalResize(nn.Module):
    """``F.interpolate(scale_factor=1.5)`` nearest and ``scale_factor=0.75`` bilinear inside a CNN."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2, self.c3 = (
            nn.Conv2d(3, 8, 3, padding=1),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.Conv2d(8, 4, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.c1(x))
        h = F.interpolate(h, scale_factor=1.5, mode="nearest")
        h = F.relu(self.c2(h))
        h = F.interpolate(h, scale_factor=0.75, mode="bilinear", align_corners=False)
        return self.c3(h)


def make_fractional_resize() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(FractionalResize()), _px(10)


class UnevenSplits(nn.Module):
    """``chunk(3)`` of 10 channels (4, 4, 2), ``split([3, 5, 2])`` and ``split(4)`` (4, 4, 2), each part
    through its own op."""

    def __init__(self, d: int = 10) -> None:
        super().__init__()
        self.fc = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b, c = self.fc(x).chunk(3, -1)
        p, q, r = x.split([3, 5, 2], -1)
        s = x.split(4, -1)
        return torch.cat(
            [a.sigmoid(), b.tanh(), c * 2, p.sum(-1, keepdim=True), q.amax(-1, keepdim=True), r, s[-1]], -1
        )


def make_uneven_splits() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(UnevenSplits()), torch.randn(2, 10, generator=_gen())


class InplaceViews(nn.Module):
    """In-place updates through views: ``y[:, :2] *= 2``, ``y[..., 4:].add_()``, ``narrow().mul_()``,
    ``y[:, 0].clamp_()``, and a bias ``expand``-ed to the batch, cloned, then written in place by index."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.fc = nn.Linear(d, d)
        self.bias = nn.Parameter(torch.randn(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x).clone()
        y[:, :2] *= 2
        y[..., 4:].add_(y[..., :4])
        y.narrow(1, 4, 3).mul_(0.5)
        y[:, 0].clamp_(min=-0.5)
        base = self.bias.expand(x.shape[0], -1).clone()
        base[:, 0] += x.sum(-1)
        base[:, -1] = y[:, 0]
        return y + base


def make_inplace_views() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(InplaceViews()), torch.randn(3, 8, generator=_gen())


class RunningSumInPlace(nn.Module):
    """``y[..., 1:] += y[..., :-1]`` written as ``add_`` on a view: eager PyTorch reads elements it has already
    written (a running sum along each row); ``torch.export`` and every converter compute ``y[1:] + y[:-1]``."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.fc = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        y[..., 1:].add_(y[..., :-1])
        return y


def make_running_sum_in_place() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(RunningSumInPlace()), torch.randn(3, 8, generator=_gen())


class ViewWrites(nn.Module):
    """Writes through views TorchScript's graph cannot write back: ``cov.diagonal().add_(eps)`` (a covariance
    made positive definite), a column set through ``transpose(...)[0]``, half the features zeroed through a
    ``chunk`` part; the tensors are read afterwards."""

    def __init__(self, d: int = 6) -> None:
        super().__init__()
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)  # (b, n, d)
        cov = h.transpose(1, 2) @ h / h.shape[1]
        cov.diagonal(dim1=-2, dim2=-1).add_(1e-2)
        cov.transpose(1, 2)[:, 0].mul_(0.5)
        h.chunk(2, dim=-1)[1].zero_()
        return torch.cat([cov.flatten(1), h.flatten(1)], 1)


def make_view_writes() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(ViewWrites()), torch.randn(2, 5, 6, generator=_gen())


class IndexArithmetic(nn.Module):
    """2-D positions from a flat ``arange`` by ``//`` and ``%`` looked up in row / column tables, and ids
    hashed into buckets by ``torch.remainder`` of an int64 input."""

    def __init__(self, d: int = 16, w: int = 4, buckets: int = 13) -> None:
        super().__init__()
        self.rows, self.cols = nn.Embedding(8, d), nn.Embedding(w, d)
        self.hash = nn.Embedding(buckets, d)
        self.fc = nn.Linear(d, 3)
        self.w, self.buckets = w, buckets

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        n = ids.shape[1]
        pos = torch.arange(n)
        h = (
            self.rows(pos // self.w)
            + self.cols(pos % self.w)
            + self.hash(torch.remainder(ids * 31 + 7, self.buckets))
        )
        return self.fc(h)


def make_index_arithmetic() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(IndexArithmetic()), torch.randint(0, 1000, (2, 12), generator=_gen())


class TensorClamp(nn.Module):
    """``clamp(min=lo, max=hi)`` with learned per-feature tensor bounds, and ``torch.clamp`` with a tensor min
    computed from the input."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.fc = nn.Linear(d, d)
        self.lo = nn.Parameter(-torch.rand(d))
        self.hi = nn.Parameter(torch.rand(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x).clamp(min=self.lo, max=self.hi)
        floor = x.mean(-1, keepdim=True).expand_as(h)
        return torch.clamp(h, min=floor) + torch.minimum(h, self.hi) * torch.maximum(x, self.lo)


def make_tensor_clamp() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(TensorClamp()), torch.randn(3, 8, generator=_gen())


class SeriesOps(nn.Module):
    """A time-series head: ``torch.diff`` of the input, ``cumprod`` of (1 + small returns), ``logsumexp`` over
    time for a soft maximum, concatenated into a Linear."""

    def __init__(self, t: int = 12, ch: int = 3) -> None:
        super().__init__()
        self.fc = nn.Linear(ch * (3 * t - 1 + 1), 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = torch.diff(x, dim=-1)
        growth = torch.cumprod(1 + 0.05 * torch.tanh(x), dim=-1)
        soft_max = torch.logsumexp(x, dim=-1, keepdim=True)
        return self.fc(torch.cat([d, growth, x, soft_max], -1).flatten(1))


def make_series_ops() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(SeriesOps()), torch.randn(2, 3, 12, generator=_gen())


class FoldUnfold(nn.Module):
    """Overlapping patches by ``F.unfold`` (4x4, stride 2), a per-patch MLP, stitched back by ``F.fold``
    and divided by the fold of ones (the overlap count), as patch-based denoisers do."""

    def __init__(self, ch: int = 3, k: int = 4, stride: int = 2) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(ch * k * k, 32), nn.GELU(), nn.Linear(32, ch * k * k))
        self.k, self.stride = k, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        patches = F.unfold(x, self.k, stride=self.stride)
        out = self.mlp(patches.transpose(1, 2)).transpose(1, 2)
        ones = F.unfold(torch.ones_like(x[:, :1]), self.k, stride=self.stride)
        return F.fold(out, size, self.k, stride=self.stride) / F.fold(ones, size, self.k, stride=self.stride)


def make_fold_unfold() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(FoldUnfold()), _px(10)


class ShapeInts(nn.Module):
    """Shapes as Python ints: ``b, c, h, w = x.shape`` for a space-to-depth ``view``, ``torch.ones(h, w)``,
    ``x.new_zeros`` and ``int(c * 0.5)`` channel slices."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(12, 8, 1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        s2d = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, c * 4, h // 2, w // 2)
        y = self.conv(s2d)
        half = int(y.shape[1] * 0.5)
        weight = torch.ones(h // 2, w // 2) / (h * w / 4)
        pooled = (y[:, :half] * weight).sum((-2, -1)) + x.new_zeros(b, half)
        return self.fc(pooled)


def make_shape_ints() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(ShapeInts()), _px(8)


class MixedDtypes(nn.Module):
    """Three inputs of three dtypes, int64 ids, float features and a bool padding mask, returning a dict of a
    pooled score and per-token logits."""

    def __init__(self, vocab: int = 30, d: int = 16, feats: int = 5) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.feat = nn.Linear(feats, d)
        self.tok, self.score = nn.Linear(d, 4), nn.Linear(d, 1)

    def forward(self, ids: torch.Tensor, feats: torch.Tensor, pad: torch.Tensor) -> dict[str, torch.Tensor]:
        h = torch.tanh(self.embed(ids) + self.feat(feats))
        h = h.masked_fill(pad[..., None], 0.0)
        count = (~pad).sum(1, keepdim=True).clamp(min=1)
        return {"tokens": self.tok(h), "score": self.score(h.sum(1) / count)}


def make_mixed_dtypes() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    g = _gen()
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[1, 5:] = True
    return randomize(MixedDtypes()), (
        torch.randint(0, 30, (2, 7), generator=g),
        torch.randn(2, 7, 5, generator=g),
        pad,
    )


class LayerNorm2d(nn.LayerNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def make_channels_last_input() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 4, 4), LayerNorm2d(16), nn.Conv2d(16, 16, 7, padding=3, groups=16), LayerNorm2d(16),
        nn.Conv2d(16, 32, 1), nn.GELU(), nn.Conv2d(32, 16, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5),
    )  # fmt: skip
    return randomize(net), _px(16).contiguous(memory_format=torch.channels_last)


class GQA(nn.Module):
    """Grouped-query attention: 4 query heads share 2 key / value heads through ``repeat_interleave``; a
    causal ``tril`` mask by ``masked_fill``."""

    def __init__(self, d: int = 32, heads: int = 4, kv_heads: int = 2) -> None:
        super().__init__()
        hd = d // heads
        self.q, self.kv, self.o = nn.Linear(d, d), nn.Linear(d, 2 * kv_heads * hd), nn.Linear(d, d)
        self.heads, self.kv_heads, self.hd = heads, kv_heads, hd

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q = self.q(x).view(b, n, self.heads, self.hd).transpose(1, 2)
        k, v = self.kv(x).view(b, n, 2, self.kv_heads, self.hd).permute(2, 0, 3, 1, 4)
        rep = self.heads // self.kv_heads
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        att = q @ k.transpose(-2, -1) / math.sqrt(self.hd)
        att = att.masked_fill(torch.tril(torch.ones(n, n, dtype=torch.bool)).logical_not(), float("-inf"))
        return x + self.o((att.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d))


def make_gqa() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(GQA()), torch.randn(1, 10, 32, generator=_gen())


class Bucketize(nn.Module):
    """Numeric features binned by ``torch.bucketize`` against fixed boundaries (a quantile table), each bin
    embedded, as tabular and ranking models do."""

    def __init__(self, feats: int = 3, d: int = 8) -> None:
        super().__init__()
        self.register_buffer("bounds", torch.tensor([-1.0, -0.3, 0.0, 0.3, 1.0]))
        self.embed = nn.Embedding(6, d)
        self.fc = nn.Linear(feats * d, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bins = torch.bucketize(x, self.bounds)
        return self.fc(self.embed(bins).flatten(1))


def make_bucketize() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(Bucketize()), torch.randn(4, 3, generator=_gen())


class PaddingModes(nn.Module):
    """Reflect padding before a conv (image) and replicate padding on a 1-D signal, as denoisers and vocoders
    pad."""

    def __init__(self) -> None:
        super().__init__()
        self.c2, self.c1 = nn.Conv2d(3, 8, 3), nn.Conv1d(8, 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.c2(F.pad(x, (1, 1, 1, 1), mode="reflect")))
        s = h.mean(2)
        return self.c1(F.pad(s, (2, 2), mode="replicate"))


def make_padding_modes() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(PaddingModes()), _px(12)


class NaiveSoftmaxAttention(nn.Module):
    """Tied-key cosine attention with a hand-written softmax, ``exp(s) / exp(s).sum()`` without subtracting the
    row maximum, at CLIP's temperature 0.07: each token's score with itself is 1 / 0.07 = 14.3 and exp(14.3)
    = 1.6e6, exact in float32, past fp16's 65504."""

    def __init__(self, d: int = 16, temperature: float = 0.07) -> None:
        super().__init__()
        self.qv, self.out = nn.Linear(d, 2 * d), nn.Linear(d, d)
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, v = self.qv(x).chunk(2, -1)
        q = F.normalize(q, dim=-1)
        weights = torch.exp(q @ q.transpose(1, 2) / self.temperature)
        weights = weights / weights.sum(-1, keepdim=True)
        return self.out(weights @ v)


def make_naive_softmax() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(NaiveSoftmaxAttention()), torch.randn(1, 8, 16, generator=_gen())


class GramStyle(nn.Module):
    """A style-transfer loss network's Gram matrices on an image given in 0-255 (not normalized): each entry
    sums channel products over every pixel, far past fp16's range."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x).flatten(2)
        gram = f @ f.transpose(1, 2)
        return gram / f.shape[-1]


def make_gram() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(GramStyle()), torch.rand(1, 3, 16, 16, generator=_gen()) * 255


QUIRKS6: list[Outside] = [
    Outside("torch.where with scalar branches", "plain", make_where_scalars),
    Outside("fully masked softmax rows (-inf, zeroed after)", "plain", make_fully_masked),
    Outside("F.interpolate non-integer scale_factor", "vision", make_fractional_resize),
    Outside("uneven chunk / split", "plain", make_uneven_splits),
    Outside(
        "in-place ops on views, expand + clone + index write",
        "plain",
        make_inplace_views,
        note="add_ / mul_ / clamp_ on a slice or narrow written back (was SNR 3.8 dB: coremltools made them "
        "out-of-place and left the tensor unchanged)",
    ),
    Outside(
        "in-place add_ reading what it writes (eager only)",
        "plain",
        make_running_sum_in_place,
        numerics="fail",
        note="eager PyTorch differs from torch.export's own graph: named as eager-only at the add_ line, with "
        "clone() as the fix (was 'conversion problem ... integers beyond int32')",
    ),
    Outside(
        "writes through diagonal / transpose / chunk views",
        "plain",
        make_view_writes,
        note="converted through torch.export (TorchScript's graph dropped each write: the TorchScript "
        "attempt is refused at the line); diagonal_scatter and zero rescued",
    ),
    Outside("positions by // and %, ids by remainder", "text", make_index_arithmetic),
    Outside("clamp with tensor bounds", "plain", make_tensor_clamp),
    Outside("diff, cumprod, logsumexp", "time series", make_series_ops),
    Outside("F.unfold / F.fold overlapping patches", "vision", make_fold_unfold),
    Outside("shapes from x.shape as Python ints", "vision", make_shape_ints),
    Outside("int64 + float + bool inputs, dict out", "text", make_mixed_dtypes),
    Outside("channels-last input, LayerNorm2d by permute", "vision", make_channels_last_input),
    Outside("grouped-query attention (repeat_interleave)", "text", make_gqa),
    Outside("numeric binning (torch.bucketize)", "plain", make_bucketize),
    Outside("reflect / replicate padding", "vision", make_padding_modes),
    Outside("hand-written softmax without max subtraction", "plain", make_naive_softmax, numerics="fail"),
    Outside("Gram matrices of a 0-255 image", "vision", make_gram, numerics="fail"),
]
