"""Generation throughput of a stateful LM package: time to first token, prefill and decode tokens/s.

Each timed run opens a fresh session on the runtime handle (``devicefit.load(pkg, engine="interp")``) and
makes two ``Model.generate`` calls in it: the prompt with ``max_new_tokens=1`` (prefill of the P prompt
tokens + the first token: the *time to first token*), then an empty continuation of N - 1 tokens (the
first token goes into the cache first, so exactly N - 1 decode steps). The tokens are the ones a single
``generate(prompt, N)`` call gives; only the split into two calls lets the two phases be timed apart.
Figures are medians over the timed runs, after untimed warm-up runs; the raw samples are kept.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from devicefit.errors import DevicefitError, InputError

__all__ = [
    "DecodeBound",
    "GenerationProfile",
    "LMPackageInfo",
    "decode_bounds",
    "is_stateful_lm_package",
    "lm_package_info",
    "profile_generation",
]

DEFAULT_PROMPT_TOKENS = 16
DEFAULT_NEW_TOKENS = 32


@dataclass(frozen=True)
class LMPackageInfo:
    """What the package's description says: context, vocabulary, and bytes one decode step reads."""

    max_context: int
    vocab_size: int
    weight_bytes: int
    kv_cache_bytes: int

    @property
    def bytes_per_token(self) -> int:
        """Weights + the whole cache at full context (as ``devicefit.analyze.kv_cache`` counts them)."""
        return self.weight_bytes + self.kv_cache_bytes


@dataclass
class DecodeBound:
    """A catalog device's decode tokens/s upper bound (bandwidth / bytes per token; None: no bandwidth)."""

    device: str
    name: str
    bandwidth_gbps: float | None
    tokens_per_s_bound: float | None


@dataclass
class GenerationProfile:
    """Measured generation throughput; times in seconds, raw samples one per timed run.

    Attributes:
        model: the package (or the Hugging Face folder it was converted from).
        engine / precision: how it ran (the interpreter; ``fp16`` emulates the device's arithmetic).
        prompt_tokens: P, the prompt length of every run.
        new_tokens: N, tokens generated per run (the first comes from prefill, N - 1 from decode steps).
        warmup / runs: untimed and timed runs.
        ttft_s: time to first token per run (prefill of P tokens + picking the first token).
        decode_s: time of the N - 1 decode steps per run.
        prompt: the prompt ids (seeded random; the same every run).
        tokens: the generated ids of the last run (its length is ``new_tokens``).
        bounds: per catalog device decode upper bounds (arithmetic, not measured).
    """

    model: str
    engine: str
    precision: str
    prompt_tokens: int
    new_tokens: int
    warmup: int
    runs: int
    max_context: int
    bytes_per_token: int
    prompt: list[int] = field(default_factory=list)
    ttft_s: list[float] = field(default_factory=list)
    decode_s: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    bounds: list[DecodeBound] = field(default_factory=list)

    @property
    def prefill_tokens_per_s(self) -> list[float]:
        """P / time to first token, per run."""
        return [self.prompt_tokens / t for t in self.ttft_s]

    @property
    def decode_tokens_per_s(self) -> list[float]:
        """(N - 1) / decode time, per run."""
        return [(self.new_tokens - 1) / t for t in self.decode_s]

    def medians(self) -> dict[str, float]:
        """Median time to first token (ms), prefill and decode tokens/s."""
        return {
            "ttft_ms": statistics.median(self.ttft_s) * 1e3,
            "prefill_tokens_per_s": statistics.median(self.prefill_tokens_per_s),
            "decode_tokens_per_s": statistics.median(self.decode_tokens_per_s),
        }

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict: settings, raw samples, per-run rates and the medians."""
        d = asdict(self)
        d["prefill_tokens_per_s"] = self.prefill_tokens_per_s
        d["decode_tokens_per_s"] = self.decode_tokens_per_s
        d["median"] = self.medians()
        return d


def _functions(spec: Any) -> dict[str, Any]:
    return {f.name: f for f in spec.description.functions}


def is_stateful_lm_package(path: Any) -> bool:
    """True for an ``.mlpackage`` with ``prefill`` and ``decode`` functions keeping ``k_cache`` / ``v_cache``
    states (what ``devicefit.convert.stateful.convert_causal_lm`` writes). Reads only the description."""
    from devicefit.interp.package import read_spec

    if not isinstance(path, (str, os.PathLike)) or Path(path).suffix.lower() != ".mlpackage":
        return False
    try:
        spec = read_spec(path)[0]
    except DevicefitError:
        return False  # the ordinary profile reports the unreadable package
    fns = _functions(spec)
    if not {"prefill", "decode"} <= set(fns):
        return False
    return {"k_cache", "v_cache"} <= {s.name for s in fns["decode"].state}


def lm_package_info(path: str | os.PathLike[str]) -> LMPackageInfo:
    """Context length, vocabulary and decode bytes per token from a stateful LM package's description."""
    import math

    from devicefit.convert.merge import weight_bytes
    from devicefit.dtypes import proto_array_mil, tensor_bytes
    from devicefit.interp.package import read_spec

    decode = _functions(read_spec(path)[0])["decode"]
    states = {s.name: s.type.stateType.arrayType for s in decode.state}
    logits = [list(o.type.multiArrayType.shape) for o in decode.output if o.name == "logits"]
    if not logits or not logits[0] or not states.get("k_cache") or len(states["k_cache"].shape) < 4:
        raise InputError(
            f"{path}: decode declares no logits or cache shapes; re-convert it with convert_causal_lm"
        )
    cache = sum(
        tensor_bytes(proto_array_mil(a.dataType), math.prod(a.shape), default_bits=16)
        for a in states.values()
    )
    return LMPackageInfo(int(states["k_cache"].shape[3]), int(logits[0][-1]), weight_bytes(path), cache)


def decode_bounds(bytes_per_token: int, devices: list[Any] | None = None) -> list[DecodeBound]:
    """The decode tokens/s upper bound of each catalog device (default: the whole catalog)."""
    from devicefit.analyze.catalog import load_catalog
    from devicefit.analyze.kv_cache import tokens_per_s_bound

    return [
        DecodeBound(
            d.id, d.name, d.mem_bandwidth_gbps, tokens_per_s_bound(d.mem_bandwidth_gbps, bytes_per_token)
        )
        for d in (devices if devices is not None else load_catalog())
    ]


def profile_generation(
    package: str | os.PathLike[str],
    prompt_tokens: int | None = None,
    new_tokens: int | None = None,
    runs: int = 5,
    warmup: int = 1,
    precision: str = "fp16",
    devices: list[Any] | None = None,
    seed: int = 0,
    model_label: str | None = None,
) -> GenerationProfile:
    """Time greedy generation on a stateful LM package in the interpreter.

    Args:
        package: a package written by ``convert_causal_lm``.
        prompt_tokens: P (default: 16, at most half the context); the prompt is seeded random ids (the
            timing does not depend on which ids).
        new_tokens: N >= 2 (default: 32, fitted to the context).
        runs: timed runs (medians over them); warmup: untimed runs before.
        precision: ``"fp32"`` or ``"fp16"`` (emulated) interpreter arithmetic.
        devices: catalog devices for the decode bounds (default: the whole catalog).
        seed: the prompt's seed.
        model_label: what to call the model in the result (default: the package path).

    Raises:
        InputError: not a stateful LM package, or P + N - 1 exceeds the package's context.
    """
    import numpy as np

    from devicefit.runtime.handle import load

    if not is_stateful_lm_package(package):
        raise InputError(
            f"{package} is not a stateful LM package (prefill + decode with a KV cache); "
            "convert it with devicefit.convert.stateful.convert_causal_lm"
        )
    if runs < 1 or warmup < 0:
        raise InputError(f"runs must be >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    info = lm_package_info(package)
    p = (
        prompt_tokens
        if prompt_tokens is not None
        else min(DEFAULT_PROMPT_TOKENS, max(1, info.max_context // 2))
    )
    n = new_tokens if new_tokens is not None else min(DEFAULT_NEW_TOKENS, info.max_context - p + 1)
    if p < 1 or n < 2:
        raise InputError(f"need at least 1 prompt token and 2 new tokens (one decode step), got P={p}, N={n}")
    if p + n - 1 > info.max_context:
        raise InputError(
            f"a {p}-token prompt plus {n} new tokens needs a context of {p + n - 1}; the package holds "
            f"{info.max_context}: lower the prompt or new tokens, or re-convert with a larger --max-context"
        )
    prompt = np.random.default_rng(seed).integers(0, info.vocab_size, p).tolist()
    handle = load(str(package), engine="interp", function="decode", precision=precision)
    result = GenerationProfile(
        model=model_label or str(package),
        engine="interp",
        precision=precision,
        prompt_tokens=p,
        new_tokens=n,
        warmup=warmup,
        runs=runs,
        max_context=info.max_context,
        bytes_per_token=info.bytes_per_token,
        prompt=[int(t) for t in prompt],
        bounds=decode_bounds(info.bytes_per_token, devices),
    )
    for i in range(warmup + runs):
        session = handle.new_session()  # a fresh, empty cache each run
        t0 = time.perf_counter()
        first = handle.generate(prompt, 1, session=session)
        t1 = time.perf_counter()
        rest = handle.generate([], n - 1, session=session)  # feeds the first token, then n - 2 more steps
        t2 = time.perf_counter()
        if i >= warmup:
            result.ttft_s.append(t1 - t0)
            result.decode_s.append(t2 - t1)
            result.tokens = first + rest
    return result
