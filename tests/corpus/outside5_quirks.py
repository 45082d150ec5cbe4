"""Outside models, round 5: models the way users hand them over, slightly off the usual path.

A ``NamedTuple`` result, a tuple holding a list of tensors, a forward decorated ``@torch.inference_mode()``,
a forward pre-hook normalizing the input and a forward hook scaling the output (hooks a user registered and
forgot), a model wrapped in ``nn.DataParallel`` on CPU, a ``torch.jit.trace``-d then ``torch.jit.freeze``-d
module, an fp16 example input to a float32 model that casts it up, an optional second input left ``None``
by default, a non-persistent buffer, an example input that ``requires_grad``, a ``torch.autocast`` region in
forward. Listed in :data:`tests.corpus.outside5.OUTSIDE5`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from tests.corpus.families import randomize
from tests.corpus.outside import Outside, _px
from tests.corpus.outside4_quirks import SmallCNN as TinyCNN


def _gen(seed: int = 5) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Prediction(NamedTuple):
    logits: torch.Tensor
    embedding: torch.Tensor


class NamedTupleOut(TinyCNN):
    def forward(self, x: torch.Tensor) -> Prediction:  # type: ignore[override]
        emb = self.features(x).mean((2, 3))
        return Prediction(logits=self.fc(emb), embedding=F.normalize(emb, dim=-1))


def make_namedtuple_out() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(NamedTupleOut()), _px(16)


class ListInTuple(nn.Module):
    """A feature pyramid returned as ``(logits, [p1, p2, p3])``."""

    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            [nn.Conv2d(3, 8, 3, 2, 1), nn.Conv2d(8, 8, 3, 2, 1), nn.Conv2d(8, 8, 3, 2, 1)]
        )
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for stage in self.stages:
            x = F.relu(stage(x))
            feats.append(x)
        return self.fc(x.mean((2, 3))), feats


def make_list_in_tuple() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(ListInTuple()), _px(16)


class InferenceModeForward(TinyCNN):
    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).softmax(-1)


def make_inference_mode() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(InferenceModeForward()), _px(16)


def make_hooks() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    model = randomize(TinyCNN())
    model.features.register_forward_pre_hook(lambda mod, args: ((args[0] - 0.5) / 0.25,))
    model.fc.register_forward_hook(lambda mod, args, out: out * 3.0)
    return model, _px(16)


def make_data_parallel() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return nn.DataParallel(randomize(TinyCNN())), _px(16)


def make_traced_frozen() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    model, x = randomize(TinyCNN()), _px(16)
    return torch.jit.freeze(torch.jit.trace(model, x)), x


class HalfInput(TinyCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float() / 255.0)


def make_half_input() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(HalfInput()), (torch.rand(1, 3, 16, 16, generator=_gen()) * 255).half()


class OptionalMask(nn.Module):
    """``forward(x, mask=None)``: the example passes only ``x``."""

    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.fc = nn.Linear(d, 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        y, _ = self.attn(x, x, x, key_padding_mask=mask, need_weights=False)
        if mask is not None:
            y = y.masked_fill(mask[..., None], 0.0)
        return self.fc(y.mean(1))


def make_optional_mask() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(OptionalMask()), torch.randn(1, 8, 16, generator=_gen())


class NonPersistentBuffer(TinyCNN):
    """ImageNet normalization constants registered ``persistent=False`` (absent from the state dict)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward((x - self.mean) / self.std)


def make_non_persistent() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(NonPersistentBuffer()), torch.rand(1, 3, 16, 16, generator=_gen())


def make_requires_grad_input() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(TinyCNN()), _px(16).requires_grad_()


class AutocastRegion(TinyCNN):
    """A bf16 ``torch.autocast`` region around the features, cast back to float32 for the head."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            f = self.features(x)
        return self.fc(f.float().mean((2, 3)))


def make_autocast() -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    return randomize(AutocastRegion()), _px(16)


QUIRKS5: list[Outside] = [
    Outside("NamedTuple output", "plain", make_namedtuple_out),
    Outside("tuple holding a list of tensors", "vision", make_list_in_tuple),
    Outside("@torch.inference_mode() forward", "plain", make_inference_mode),
    Outside("forward hooks left registered", "plain", make_hooks),
    Outside("nn.DataParallel wrapper", "plain", make_data_parallel),
    Outside("jit.trace + jit.freeze module", "plain", make_traced_frozen),
    Outside("fp16 example input, fp32 model", "plain", make_half_input),
    Outside("optional mask input left None", "plain", make_optional_mask),
    Outside("non-persistent buffers", "plain", make_non_persistent),
    Outside("example input requires_grad", "plain", make_requires_grad_input),
    Outside("bf16 autocast region in forward", "plain", make_autocast),
]
