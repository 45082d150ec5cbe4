"""Random distributions: random_normal, random_uniform, random_bernoulli, random_categorical.

NOTE: values are drawn with PyTorch's CPU generator, so they follow the op's distribution but are never
bit-comparable with what a device draws (Core ML does not document its generator). A ``seed >= 0`` makes
every invocation return the same values (the spec's "reproducible sequence across multiple invokes"); the
default ``seed = -1`` draws fresh values from OS entropy on every call, as an unseeded op does on a device.
"""

from __future__ import annotations

import torch

from devicefit.interp.registry import float_, int_, ints, register, str_


def _generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    if seed >= 0:
        g.manual_seed(seed)
    else:
        g.seed()  # non-deterministic: an unseeded op differs between calls
    return g


@register("random_normal", attrs={"shape": ints, "mean": float_, "stddev": float_, "seed": int_})
def random_normal(shape, mean=0.0, stddev=1.0, seed=-1):
    return torch.randn(shape, generator=_generator(seed)) * stddev + mean


@register("random_uniform", attrs={"shape": ints, "low": float_, "high": float_, "seed": int_})
def random_uniform(shape, low=0.0, high=1.0, seed=-1):
    # torch.rand draws from [0, 1): the affine map keeps the spec's half-open [low, high).
    return torch.rand(shape, generator=_generator(seed)) * (high - low) + low


@register("random_bernoulli", attrs={"shape": ints, "prob": float_, "seed": int_})
def random_bernoulli(shape, prob=0.5, seed=-1):
    return (torch.rand(shape, generator=_generator(seed)) < prob).to(torch.float32)


@register("random_categorical", attrs={"mode": str_, "size": int_, "seed": int_})
def random_categorical(x, mode="logits", size=1, seed=-1):
    # Sample indices of the last axis, with replacement; returned in x's (float) dtype as the spec says.
    logits = x.to(torch.float64)
    if mode == "probs":
        logits = logits.log()
    elif mode != "logits":
        raise ValueError(f"random_categorical: mode must be 'logits' or 'probs', got {mode!r}")
    probs = torch.softmax(logits.reshape(-1, x.shape[-1]), dim=-1)
    picks = torch.multinomial(probs, size, replacement=True, generator=_generator(seed))
    return picks.reshape(*x.shape[:-1], size).to(torch.float32)
