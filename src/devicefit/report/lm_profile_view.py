"""Terminal lines for ``devicefit profile`` on a language model: generation throughput and decode bounds."""

from __future__ import annotations

from typing import Any

__all__ = ["generation_lines"]

# the bounds are arithmetic for the Apple device; the measurement is this host's interpreter
_CAPTION = (
    "measured on this host in devicefit's interpreter (not on the device); the bounds are bandwidth / bytes "
    "per token for the Apple device: upper limits, not measurements"
)
MAX_BOUNDS = 8


def generation_lines(profile: dict[str, Any]) -> list[str]:
    """Plain-text lines for one :class:`devicefit.profile.generation.GenerationProfile` (its ``to_json()``)."""
    med = profile["median"]
    p, n, runs = profile["prompt_tokens"], profile["new_tokens"], profile["runs"]
    head = f"generation · {profile['model']} · {profile['engine']} · {profile['precision']}"
    lines = [
        f"{head} (median of {runs} runs after {profile['warmup']} warm-up)",
        f"  time to first token: {med['ttft_ms']:,.1f} ms (prompt of {p} tokens)",
        f"  prefill: {med['prefill_tokens_per_s']:,.1f} tokens/s ({p} prompt tokens)",
        f"  decode: {med['decode_tokens_per_s']:,.1f} tokens/s ({n - 1} decode steps of {n} generated tokens)",
    ]
    bounds = [b for b in profile["bounds"] if b["tokens_per_s_bound"] is not None]
    if bounds:
        shown = ", ".join(f"{b['name']} {b['tokens_per_s_bound']:,.0f}" for b in bounds[-MAX_BOUNDS:])
        more = f" (+{len(bounds) - MAX_BOUNDS} more in --json)" if len(bounds) > MAX_BOUNDS else ""
        lines.append(f"  decode tokens/s upper bound ({profile['bytes_per_token']:,} B/token): {shown}{more}")
    missing = len(profile["bounds"]) - len(bounds)
    if missing:
        lines.append(f"  (partial: {missing} device(s) lack a bandwidth figure in the catalog)")
    lines.append(f"  {_CAPTION}")
    return lines
