"""Outside models, round 4: models the way users hand them over, slightly off the usual path.

A ``torch.jit.script``-ed module, a ``torch.compile``-wrapped module (``OptimizedModule``), a forward with
``.item()`` steering Python control flow, in-place ops on the input, a bool mask input, a 120-layer residual
MLP, outputs holding ``None`` and nested dicts, a classifier whose temperature-scaled logits overflow fp16,
a CNN in ``channels_last`` memory format, hashed int64 ids beyond the int32 range, an ``nn.Embedding(max_norm=...)``
renormalizing its weights in forward. Listed in
:data:`tests.corpus.outside4.OUTSIDE4`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tests.corpus.families import randomize
from tests.corpus.outside import Outside, _px


def _gen(seed: int = 4) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class SmallCNN(nn.Module):
    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU()
        )
        self.fc = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((2, 3)))


def make_scripted() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return torch.jit.script(randomize(SmallCNN())), _px(16)


def make_compiled() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return torch.compile(randomize(SmallCNN())), _px(16)


class ItemBranch(nn.Module):
    """Early exit decided in Python from a tensor: ``if x.abs().mean().item() > threshold``."""

    def __init__(self) -> None:
        super().__init__()
        self.small, self.large = nn.Linear(8, 4), nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.abs().mean().item() > 0.8:
            return self.large(x)
        return self.small(x)


def make_item_branch() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(ItemBranch()), torch.randn(4, 8, generator=_gen())


class InplaceOnInput(nn.Module):
    """Normalises its input in place (``sub_`` / ``div_`` / ``clamp_``), as preprocessing code often does."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x.sub_(0.5).div_(0.25).clamp_(-3, 3)
        return self.fc(F.relu_(self.conv(x)).mean((2, 3)))


def make_inplace_input() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(InplaceOnInput()), torch.rand(1, 3, 12, 12, generator=_gen())


class BoolMaskPool(nn.Module):
    """Masked mean pooling over a bool ``valid`` mask input (True = a real token)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj, self.head = nn.Linear(16, 16), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.proj(x)).masked_fill(~valid[..., None], 0.0)
        pooled = h.sum(1) / valid.sum(1, keepdim=True).clamp(min=1)
        return self.head(pooled)


def make_bool_mask() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    valid = torch.ones(2, 9, dtype=torch.bool)
    valid[0, 6:] = False
    return randomize(BoolMaskPool()), (torch.randn(2, 9, 16, generator=_gen()), valid)


class DeepResMLP(nn.Module):
    """120 pre-norm residual blocks (a very deep, thin net)."""

    def __init__(self, depth: int = 120, d: int = 16) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU()) for _ in range(depth)]
        )
        self.head = nn.Linear(d, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + 0.1 * block(x)
        return self.head(x)


def make_deep() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(DeepResMLP()), torch.randn(3, 16, generator=_gen())


class NestedOut(nn.Module):
    """Returns a nested dict with a ``None`` entry (an optional auxiliary loss left unset at inference)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc, self.cls, self.box = nn.Linear(8, 16), nn.Linear(16, 3), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        h = F.relu(self.enc(x))
        return {
            "heads": {"logits": self.cls(h), "boxes": self.box(h).sigmoid()},
            "aux_loss": None,
            "features": h,
        }


def make_nested_out() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(NestedOut()), torch.randn(4, 8, generator=_gen())


class TemperatureLogits(nn.Module):
    """A distilled classifier dividing its logits by a tiny learned temperature: logits beyond fp16's 65504."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(16, 32), nn.ReLU())
        self.fc = nn.Linear(32, 10)
        self.register_buffer("temperature", torch.tensor(1e-4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.fc(self.body(x)) / self.temperature
        return logits.softmax(-1)


def make_temperature() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(TemperatureLogits()), torch.randn(4, 16, generator=_gen()) * 4


def make_channels_last() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    net = randomize(SmallCNN()).to(memory_format=torch.channels_last)
    return net, _px(16).contiguous(memory_format=torch.channels_last)


class HashedEmbedding(nn.Module):
    """Hashed categorical features: raw 64-bit ids (user / item hashes) folded into a table by ``%``."""

    def __init__(self, buckets: int = 1000, d: int = 8) -> None:
        super().__init__()
        self.table, self.head, self.buckets = nn.Embedding(buckets, d), nn.Linear(d, 1), buckets

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.table(ids % self.buckets).mean(1))


def make_hashed_ids() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    ids = torch.randint(2**33, 2**40, (2, 6), generator=_gen(), dtype=torch.int64)
    return randomize(HashedEmbedding()), ids


class MaxNormEmbedding(nn.Module):
    """``nn.Embedding(max_norm=1.0)``: PyTorch renormalizes the rows it looks up, in place, in every forward."""

    def __init__(self) -> None:
        super().__init__()
        self.emb, self.fc = nn.Embedding(50, 8, max_norm=1.0), nn.Linear(8, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc(self.emb(ids).mean(1))


def make_max_norm() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(MaxNormEmbedding()), torch.randint(0, 50, (2, 7), generator=_gen())


QUIRKS4: list[Outside] = [
    Outside(
        "torch.jit.script module",
        "plain",
        make_scripted,
        note="specialized to the example (was convert FAIL: prim::If, RaiseException, aten::format, no line)",
    ),
    Outside(
        "torch.compile wrapped module",
        "plain",
        make_compiled,
        note="checked as its eager module, with a note (each reference run compiled it: 6.7 s, now 3.6 s)",
    ),
    Outside(
        "data-dependent .item() branch",
        "plain",
        make_item_branch,
        numerics="fail",
        note="conversion problem; likely cause: the .item() line tracing froze",
    ),
    Outside("in-place ops on the input", "plain", make_inplace_input),
    Outside("bool mask input", "plain", make_bool_mask),
    Outside("120-layer residual MLP", "plain", make_deep),
    Outside("nested dict output with None", "plain", make_nested_out),
    Outside(
        "temperature-scaled logits (fp16 overflow)",
        "plain",
        make_temperature,
        numerics="fail",
        note="fp16 overflow named at the division's line",
    ),
    Outside("channels_last CNN", "vision", make_channels_last),
    Outside(
        "Embedding(max_norm=1.0)",
        "plain",
        make_max_norm,
        note="embedding_renorm_ (in-place in forward): rescued",
    ),
    Outside(
        "hashed int64 ids beyond int32",
        "plain",
        make_hashed_ids,
        exit=2,
        note="exit 2, one line: the input's value does not fit Core ML's int32",
    ),
]
